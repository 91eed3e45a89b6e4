// Sends the upload forms that have a data-progress attribute with
// XMLHttpRequest, so that the named <progress> element shows how much of
// the upload has been sent. Without this script the forms still work.
"use strict";
document.querySelectorAll("form[data-progress]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var progress = document.getElementById(form.dataset.progress);
    var button = form.querySelector("button[type=submit]");
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        progress.value = Math.round((e.loaded / e.total) * 100);
      }
    });
    request.addEventListener("load", function () {
      document.open();
      document.write(request.responseText);
      document.close();
      history.replaceState(null, "", request.responseURL);
    });
    request.addEventListener("error", function () {
      button.disabled = false;
      progress.hidden = true;
    });
    progress.hidden = false;
    progress.value = 0;
    button.disabled = true;
    request.send(new FormData(form));
  });
});
