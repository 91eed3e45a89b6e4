package flash

import (
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	input := `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 master:2 - ext4 /dev/vda rw,discard
45 27 8:17 / /media/USB\040Stick rw,nosuid shared:3 - vfat /dev/sdb1 rw,fmask=0022
46 27 0:48 /@home /home rw,relatime - btrfs /dev/mapper/luks\134x rw,space_cache=v2
`
	got, err := parseMountinfo(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	want := []mount{
		{major: 0, minor: 21, mountPoint: "/proc", fsType: "proc", source: "proc"},
		{major: 254, minor: 0, mountPoint: "/", fsType: "ext4", source: "/dev/vda"},
		{major: 8, minor: 17, mountPoint: "/media/USB Stick", fsType: "vfat", source: "/dev/sdb1"},
		{major: 0, minor: 48, mountPoint: "/home", fsType: "btrfs", source: `/dev/mapper/luks\x`},
	}
	if len(got) != len(want) {
		t.Fatalf("parseMountinfo returned %d mounts, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mount %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseMountinfoInvalid(t *testing.T) {
	for _, line := range []string{
		"22 27 0:21 / /proc rw,relatime proc proc rw",
		"22 27 021 / /proc rw - proc proc rw",
		"22 27 0:x / /proc rw - proc proc rw",
		"22 27 0:21 / /proc rw -",
		"22 27",
	} {
		if _, err := parseMountinfo(strings.NewReader(line + "\n")); err == nil {
			t.Errorf("parseMountinfo(%q) returned no error, want one", line)
		}
	}
}

func TestUnescapeOctal(t *testing.T) {
	tests := map[string]string{
		`/plain`:          "/plain",
		`/a\040b`:         "/a b",
		`/tab\011x`:       "/tab\tx",
		`/back\134slash`:  `/back\slash`,
		`/short\04`:       `/short\04`,
		`/not\999octal`:   `/not\999octal`,
		`/too\777large`:   `/too\777large`,
		`/end\`:           `/end\`,
		`\040\040leading`: "  leading",
	}
	for in, want := range tests {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseSwaps(t *testing.T) {
	input := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n" +
		"/dev/sdb2                               partition\t1048572\t\t0\t\t-2\n" +
		"/swap\\040file                           file\t\t524284\t\t0\t\t-3\n"
	got, err := parseSwaps(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/dev/sdb2", "/swap file"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("parseSwaps = %q, want %q", got, want)
	}
}

// FuzzParseMountinfo checks that no mount table, including mount points that
// an unprivileged user chose for a FUSE mount, makes the parser panic.
func FuzzParseMountinfo(f *testing.F) {
	f.Add("27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n")
	f.Add("45 27 8:17 / /media/a\\040b rw - vfat /dev/sdb1 rw\n46 27 0:48 / /x rw - fuse.sshfs host: rw\n")
	f.Add("1 2 3:4 / / - - - -\n")
	f.Fuzz(func(t *testing.T, input string) {
		mounts, err := parseMountinfo(strings.NewReader(input))
		if err != nil && mounts != nil {
			t.Errorf("parseMountinfo returned mounts %v and error %v, want only one", mounts, err)
		}
	})
}
