package imap

import "testing"

func TestContainsFold(t *testing.T) {
	tests := []struct {
		b, s string
		want bool
	}{
		{"Subject: Betreff 12", "betreff 1", true},
		{"Subject: BETREFF 12", "Betreff 12", true},
		{"Subject: Betreff 12", "betreff 13", false},
		{"Subject: Grüße", "GRÜSSE", false},
		{"Subject: GRÜSSE", "grüsse", true},
		{"ab", "abc", false},
		{"", "", true},
		{"Zeile", "e", true},
	}
	for _, tc := range tests {
		if got := containsFold([]byte(tc.b), tc.s); got != tc.want {
			t.Errorf("containsFold(%q, %q) = %v, want %v", tc.b, tc.s, got, tc.want)
		}
	}
}
