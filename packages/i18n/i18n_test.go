package i18n

import "testing"

func TestCatalogsComplete(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range Languages {
		if len(c[tag.String()]) == 0 {
			t.Errorf("catalog %q is missing or empty", tag)
		}
	}
	for _, m := range c.Missing() {
		t.Errorf("missing message %s", m)
	}
	for lang, msgs := range c {
		for key, msg := range msgs {
			if msg == "" {
				t.Errorf("message %s in %s is empty", key, lang)
			}
		}
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct{ choice, accept, want string }{
		{"", "de-DE,de;q=0.9,en;q=0.8", "de"},
		{"", "de-AT", "de"},
		{"", "de-CH,fr;q=0.5", "de"},
		{"", "fr-FR", "en"},
		{"", "", "en"},
		{"en", "de-DE", "en"},
		{"de", "", "de"},
		{"xx", "de", "de"},
		{"", "garbage;;q=", "en"},
	}
	for _, tt := range tests {
		if got := Negotiate(tt.choice, tt.accept); got != tt.want {
			t.Errorf("Negotiate(%q, %q) = %q, want %q", tt.choice, tt.accept, got, tt.want)
		}
	}
}

func TestTFallsBack(t *testing.T) {
	c := Catalog{"en": {"a": "A"}, "de": {}}
	if got := c.T("de", "a"); got != "A" {
		t.Errorf(`T("de", "a") = %q, want "A"`, got)
	}
	if got := c.T("de", "b"); got != "b" {
		t.Errorf(`T("de", "b") = %q, want "b"`, got)
	}
}
