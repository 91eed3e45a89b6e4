package webui

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"

	"rsc.io/qr"
)

const (
	// qrModulePixels is the edge of one QR module in the PNG, in pixels.
	qrModulePixels = 5

	// qrMaxDisplayPixels caps the width at which a page shows a QR code,
	// so that it fits a phone screen 360 CSS pixels wide.
	qrMaxDisplayPixels = 300
)

// qrImage is a QR code for an <img> element: the PNG as a data: URL and
// the size to show it at, in CSS pixels.
type qrImage struct {
	Src  template.URL
	Size int
}

// newQRImage encodes text as a QR code (ISO/IEC 18004) with error
// correction level M. The PNG includes the quiet zone of four modules.
func newQRImage(text string) (*qrImage, error) {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return nil, fmt.Errorf("encoding QR code of %d bytes: %w", len(text), err)
	}
	code.Scale = qrModulePixels
	pixels := (code.Size + 8) * qrModulePixels
	src := "data:image/png;base64," + base64.StdEncoding.EncodeToString(code.PNG())
	return &qrImage{Src: template.URL(src), Size: min(pixels, qrMaxDisplayPixels)}, nil
}

// allowDataImages widens the page's Content-Security-Policy to the data:
// images that newQRImage makes. Pages without QR codes keep img-src at
// 'none', which default-src sets.
func allowDataImages(w http.ResponseWriter) {
	csp := w.Header().Get("Content-Security-Policy")
	w.Header().Set("Content-Security-Policy", csp+"; img-src data:")
}
