package flash

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestConfirm(t *testing.T) {
	tgt := target{path: "/dev/disk/by-id/usb-Card", resolved: "/dev/sdb", size: 32 << 30, model: "Ultra"}
	tests := []struct {
		answer  string
		wantErr error
	}{
		{"yes\n", nil},
		{"YES\n", nil},
		{"  ja \r\n", nil},
		{"yes", nil},
		{"no\n", ErrAborted},
		{"y\n", ErrAborted},
		{"nein\n", ErrAborted},
		{"\n", ErrAborted},
		{"", ErrAborted},
		{"no\nyes\n", ErrAborted},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := confirm(strings.NewReader(tt.answer), &out, tgt, "heimwolke.img", 1<<30)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("confirm with answer %q = %v, want %v", tt.answer, err, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "nothing was written to "+tgt.path) {
			t.Errorf("confirm with answer %q = %q, want it to say that nothing was written to %s", tt.answer, err, tgt.path)
		}
	}
}

func TestConfirmShowsDevice(t *testing.T) {
	tgt := target{path: "/dev/disk/by-id/usb-Card", resolved: "/dev/sdb", size: 31914983424, model: "Ultra"}
	var out bytes.Buffer
	if err := confirm(strings.NewReader("yes\n"), &out, tgt, "heimwolke.img", 1<<30); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/dev/disk/by-id/usb-Card", "/dev/sdb", "Ultra", "29.7 GiB (31914983424 bytes)", "heimwolke.img (1.0 GiB)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("prompt does not contain %q:\n%s", want, out.String())
		}
	}
}

func TestConfirmWithoutInput(t *testing.T) {
	err := confirm(nil, &bytes.Buffer{}, target{path: "/dev/sdb"}, "heimwolke.img", 1<<30)
	if !errors.Is(err, ErrAborted) {
		t.Errorf("confirm without input = %v, want ErrAborted", err)
	}
}
