package fat

import (
	"fmt"
	"testing"
)

func TestAssignShortNames(t *testing.T) {
	tests := []struct {
		long      string
		short     string
		caseFlags byte
		longName  bool
	}{
		{"README", "README", 0, false},
		{"BOOTCODE.BIN", "BOOTCODE.BIN", 0, false},
		{"config.txt", "CONFIG.TXT", caseLowerBase | caseLowerExt, false},
		{"start4.elf", "START4.ELF", caseLowerBase | caseLowerExt, false},
		{"KERNEL.img", "KERNEL.IMG", caseLowerExt, false},
		{"Makefile", "MAKEFILE", 0, true},
		{"bcm2710-rpi-3-b-plus.dtb", "BCM271~1.DTB", 0, true},
		{"bcm2710-rpi-3-b.dtb", "BCM271~2.DTB", 0, true},
		{"vc4-kms-v3d.dtbo", "VC4-KM~1.DTB", 0, true},
		{".hidden", "HIDDEN~1", 0, true},
		{"a.b.c", "AB~1.C", 0, true},
		{"x y+z.txt", "XY_Z~1.TXT", 0, true},
		{"Grüße.txt", "GR__E~1.TXT", 0, true},
		// A name that is itself a numeric-tail name keeps it, so the
		// generated name for the long one moves on to ~2.
		{"LONGFI~1.TXT", "LONGFI~1.TXT", 0, false},
		{"longfilename.txt", "LONGFI~2.TXT", 0, true},
	}

	dir := &node{children: map[string]*node{}}
	byName := map[string]*node{}
	for _, tt := range tests {
		n := &node{name: tt.long}
		dir.children[foldName(tt.long)] = n
		byName[tt.long] = n
	}
	if err := assignShortNames(dir); err != nil {
		t.Fatal(err)
	}

	for _, tt := range tests {
		n := byName[tt.long]
		if got := n.short.String(); got != tt.short {
			t.Errorf("short name of %q = %q, want %q", tt.long, got, tt.short)
		}
		if n.caseFlags != tt.caseFlags {
			t.Errorf("case flags of %q = %#02x, want %#02x", tt.long, n.caseFlags, tt.caseFlags)
		}
		if n.longName != tt.longName {
			t.Errorf("long-name entries for %q = %v, want %v", tt.long, n.longName, tt.longName)
		}
		if got, want := n.longNameEntryCount() > 0, tt.longName; got != want {
			t.Errorf("longNameEntryCount(%q) > 0 = %v, but layout gives it long-name entries = %v", tt.long, got, want)
		}
	}
}

func TestNumericTailShortensPrimary(t *testing.T) {
	dir := &node{children: map[string]*node{}}
	var names []string
	for i := range 12 {
		name := fmt.Sprintf("abcdefghij-%02d.txt", i)
		names = append(names, name)
		dir.children[foldName(name)] = &node{name: name}
	}
	if err := assignShortNames(dir); err != nil {
		t.Fatal(err)
	}

	want := map[string]string{
		names[0]:  "ABCDEF~1.TXT",
		names[8]:  "ABCDEF~9.TXT",
		names[9]:  "ABCDE~10.TXT",
		names[11]: "ABCDE~12.TXT",
	}
	for long, short := range want {
		if got := dir.children[foldName(long)].short.String(); got != short {
			t.Errorf("short name of %q = %q, want %q", long, got, short)
		}
	}
}

func TestMarshalLongName(t *testing.T) {
	// 14 characters: the second entry holds one character, the 0x0000
	// terminator and 0xFFFF padding.
	name := "abcdefghijklmn"
	b := make([]byte, 2*dirEntrySize)
	if n := marshalLongName(b, name, 0x5A); n != 2 {
		t.Fatalf("marshalLongName(%q) wrote %d entries, want 2", name, n)
	}

	first, second := b[:dirEntrySize], b[dirEntrySize:]
	if first[0] != 0x42 || second[0] != 0x01 {
		t.Errorf("sequence bytes = %#02x, %#02x, want 0x42, 0x01", first[0], second[0])
	}
	for i, e := range [][]byte{first, second} {
		if e[11] != attrLongName || e[13] != 0x5A || e[26] != 0 || e[27] != 0 {
			t.Errorf("entry %d: attribute %#02x, checksum %#02x, cluster %d; want 0x0f, 0x5a, 0", i, e[11], e[13], e[26])
		}
	}
	if got := string([]byte{second[1], second[3], second[5]}); got != "abc" {
		t.Errorf("first characters of the name = %q, want \"abc\"", got)
	}
	wantTail := []byte{'n', 0, 0, 0, 0xFF, 0xFF}
	if got := first[1:7]; string(got) != string(wantTail) {
		t.Errorf("last entry starts % x, want % x", got, wantTail)
	}
}
