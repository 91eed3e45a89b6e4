package files

import (
	"errors"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/appliance/webui"
)

// TestCheckNameTooLong checks that a name longer than ext4 stores is an
// invalid name, for which the web UI returns 400 rather than an internal
// error.
func TestCheckNameTooLong(t *testing.T) {
	if err := checkName(strings.Repeat("a", 255)); err != nil {
		t.Errorf("checkName of 255 bytes: %v, want nil", err)
	}
	if err := checkName(strings.Repeat("ä", 128)); !errors.Is(err, webui.ErrInvalidName) {
		t.Errorf("checkName of 256 bytes: %v, want ErrInvalidName", err)
	}
}
