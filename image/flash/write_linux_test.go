package flash

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// writeToFile writes the image at imagePath to a new regular file with
// writeImage and returns both opened, with the sums.
func writeToFile(t *testing.T, imagePath string) (*os.File, target, image, imageSums) {
	t.Helper()
	img, err := openImage(imagePath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.file.Close() })

	path := filepath.Join(t.TempDir(), "device.img")
	dev, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	tgt := target{path: path, resolved: path}

	sums, err := writeImage(t.Context(), dev, tgt, img, io.Discard)
	if err != nil {
		t.Fatalf("writeImage: %v", err)
	}
	if err := flushTarget(dev, tgt); err != nil {
		t.Fatalf("flushTarget: %v", err)
	}
	return dev, tgt, img, sums
}

func TestVerifyImage(t *testing.T) {
	// 10 MiB and 3 bytes: two whole chunks and a short last one.
	dev, tgt, img, sums := writeToFile(t, writeRandomImage(t, 10<<20+3))
	if len(sums.chunks) != 3 {
		t.Errorf("writeImage returned %d chunk sums, want 3", len(sums.chunks))
	}
	if err := verifyImage(t.Context(), dev, tgt, img, sums, io.Discard); err != nil {
		t.Errorf("verifyImage of an intact copy: %v", err)
	}
}

func TestVerifyImageMismatch(t *testing.T) {
	for _, offset := range []int64{0, 5<<20 + 17, 10<<20 + 2} {
		dev, tgt, img, sums := writeToFile(t, writeRandomImage(t, 10<<20+3))
		b := make([]byte, 1)
		if _, err := dev.ReadAt(b, offset); err != nil {
			t.Fatal(err)
		}
		if _, err := dev.WriteAt([]byte{^b[0]}, offset); err != nil {
			t.Fatal(err)
		}

		err := verifyImage(t.Context(), dev, tgt, img, sums, io.Discard)
		if !errors.Is(err, ErrVerify) {
			t.Fatalf("verifyImage with byte %d flipped = %v, want ErrVerify", offset, err)
		}
		if want := "at offset " + strconv.FormatInt(offset, 10) + " "; !strings.Contains(err.Error(), want) {
			t.Errorf("verifyImage with byte %d flipped = %q, want it to contain %q", offset, err, want)
		}
	}
}

func TestVerifyImageShortDevice(t *testing.T) {
	dev, tgt, img, sums := writeToFile(t, writeRandomImage(t, 10<<20))
	if err := dev.Truncate(6 << 20); err != nil {
		t.Fatal(err)
	}
	err := verifyImage(t.Context(), dev, tgt, img, sums, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "reading back") {
		t.Errorf("verifyImage of a truncated copy = %v, want a read-back error", err)
	}
}
