package netaddr

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// addrMessage builds an RTM_NEWADDR message as the kernel sends it, with
// the flags both in ifa_flags (low 8 bits) and in IFA_FLAGS.
func addrMessage(index int, addr string, flags uint32, created uint32) []byte {
	a := netip.MustParseAddr(addr)
	family := byte(unix.AF_INET6)
	if a.Is4() {
		family = unix.AF_INET
	}

	body := []byte{family, 64, byte(flags), unix.RT_SCOPE_UNIVERSE, 0, 0, 0, 0}
	binary.NativeEndian.PutUint32(body[4:8], uint32(index))
	body = appendAttr(body, unix.IFA_ADDRESS, a.AsSlice())
	flagBytes := binary.NativeEndian.AppendUint32(nil, flags)
	body = appendAttr(body, unix.IFA_FLAGS, flagBytes)
	cache := make([]byte, unix.SizeofIfaCacheinfo)
	binary.NativeEndian.PutUint32(cache[8:12], created)
	body = appendAttr(body, unix.IFA_CACHEINFO, cache)

	return netlinkMessage(unix.RTM_NEWADDR, body)
}

func appendAttr(b []byte, typ uint16, value []byte) []byte {
	length := unix.SizeofRtAttr + len(value)
	b = binary.NativeEndian.AppendUint16(b, uint16(length))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, value...)
	for len(b)%unix.RTA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

func netlinkMessage(typ uint16, body []byte) []byte {
	b := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(b[0:4], uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	return append(b, body...)
}

func concat(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, m...)
	}
	return b
}

func TestParseAddrMessages(t *testing.T) {
	buf := concat(
		addrMessage(2, "192.168.1.5", unix.IFA_F_PERMANENT, 10),
		addrMessage(2, "2001:db8:1::5054:ff:fe12:3456", unix.IFA_F_MANAGETEMPADDR|unix.IFA_F_STABLE_PRIVACY, 20),
		netlinkMessage(unix.NLMSG_DONE, make([]byte, 4)),
	)
	addrs, done, err := parseAddrMessages(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !done {
		t.Errorf("done: got false, want true after NLMSG_DONE")
	}
	if len(addrs) != 2 {
		t.Fatalf("addresses: got %d, want 2", len(addrs))
	}

	got := addrs[1]
	want := InterfaceAddr{
		Index:     2,
		Addr:      netip.MustParseAddr("2001:db8:1::5054:ff:fe12:3456"),
		PrefixLen: 64,
		Scope:     unix.RT_SCOPE_UNIVERSE,
		Flags:     unix.IFA_F_MANAGETEMPADDR | unix.IFA_F_STABLE_PRIVACY,
		Created:   20,
	}
	if got != want {
		t.Errorf("second address: got %+v, want %+v", got, want)
	}
}

func TestParseAddrMessagesError(t *testing.T) {
	errno := -int32(unix.EPERM)
	errBody := binary.NativeEndian.AppendUint32(nil, uint32(errno))
	_, _, err := parseAddrMessages(netlinkMessage(unix.NLMSG_ERROR, append(errBody, make([]byte, 16)...)))
	if err == nil {
		t.Fatal("NLMSG_ERROR with EPERM: got no error, want one")
	}
}

func TestParseAddrMessagesTruncated(t *testing.T) {
	msg := addrMessage(2, "2001:db8::1", 0, 0)
	for _, n := range []int{len(msg) - 1, unix.SizeofNlMsghdr + 3} {
		if _, _, err := parseAddrMessages(msg[:n]); err == nil {
			t.Errorf("message cut to %d of %d bytes: got no error, want one", n, len(msg))
		}
	}
}

func TestStableIPv6(t *testing.T) {
	eui64 := "2001:db8:1::5054:ff:fe12:3456"
	tests := []struct {
		name  string
		addrs [][]byte
		index int
		want  string // empty for none
	}{
		{
			name: "temporary skipped",
			addrs: [][]byte{
				addrMessage(2, "2001:db8:1::a1b2:c3d4:e5f6:789", unix.IFA_F_TEMPORARY, 90),
				addrMessage(2, eui64, unix.IFA_F_MANAGETEMPADDR, 10),
			},
			want: eui64,
		},
		{
			name: "deprecated and tentative skipped",
			addrs: [][]byte{
				addrMessage(2, "2001:db8:1::1", unix.IFA_F_DEPRECATED|unix.IFA_F_PERMANENT, 10),
				addrMessage(2, "2001:db8:2::1", unix.IFA_F_TENTATIVE|unix.IFA_F_PERMANENT, 20),
				addrMessage(2, "2001:db8:3::1", unix.IFA_F_DADFAILED|unix.IFA_F_PERMANENT, 30),
			},
			want: "",
		},
		{
			name: "ula link-local and ipv4 skipped",
			addrs: [][]byte{
				addrMessage(2, "fd00::1", unix.IFA_F_PERMANENT, 10),
				addrMessage(2, "fe80::1", unix.IFA_F_PERMANENT, 10),
				addrMessage(2, "198.51.100.1", unix.IFA_F_PERMANENT, 10),
			},
			want: "",
		},
		{
			name: "slaac preferred over static",
			addrs: [][]byte{
				addrMessage(2, "2001:db8:1::53", unix.IFA_F_PERMANENT, 50),
				addrMessage(2, "2001:db8:1::abcd:1234:5678:9abc", unix.IFA_F_STABLE_PRIVACY, 10),
			},
			want: "2001:db8:1::abcd:1234:5678:9abc",
		},
		{
			name: "newest prefix wins",
			addrs: [][]byte{
				addrMessage(2, "2001:db8:1::5054:ff:fe12:3456", 0, 10),
				addrMessage(2, "2001:db8:2::5054:ff:fe12:3456", 0, 500),
			},
			want: "2001:db8:2::5054:ff:fe12:3456",
		},
		{
			name: "other interface ignored",
			addrs: [][]byte{
				addrMessage(3, "2001:db8:9::1", unix.IFA_F_PERMANENT, 99),
				addrMessage(2, "2001:db8:1::1", unix.IFA_F_PERMANENT, 10),
			},
			index: 2,
			want:  "2001:db8:1::1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addrs, _, err := parseAddrMessages(concat(tt.addrs...))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := StableIPv6(addrs, tt.index)
			if tt.want == "" {
				if ok {
					t.Errorf("got %v, want no address", got)
				}
				return
			}
			if want := netip.MustParseAddr(tt.want); !ok || got != want {
				t.Errorf("got %v (ok %v), want %v", got, ok, want)
			}
		})
	}
}

func FuzzParseAddrMessages(f *testing.F) {
	f.Add(addrMessage(2, "2001:db8::1", unix.IFA_F_PERMANENT, 10))
	f.Add(concat(addrMessage(2, "10.0.0.1", 0, 0), netlinkMessage(unix.NLMSG_DONE, make([]byte, 4))))
	f.Add(netlinkMessage(unix.NLMSG_ERROR, make([]byte, 20)))
	f.Fuzz(func(t *testing.T, b []byte) {
		addrs, _, err := parseAddrMessages(b)
		if err != nil {
			return
		}
		for _, a := range addrs {
			if !a.Addr.IsValid() {
				t.Errorf("parsed an invalid address from %x", b)
			}
		}
	})
}
