package qemu

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestDefaultForwardsOffset(t *testing.T) {
	forwards, err := DefaultForwards(10000)
	if err != nil {
		t.Fatal(err)
	}
	want := []Forward{
		{80, 10080}, {443, 10443}, {25, 10025}, {465, 10465}, {587, 10587},
		{993, 10993}, {5222, 15222}, {5223, 15223}, {5269, 15269},
	}
	if !slices.Equal(forwards, want) {
		t.Errorf("DefaultForwards(10000) = %v, want %v", forwards, want)
	}
	if got := forwards[0].String(); got != "box port 80 -> 127.0.0.1:10080" {
		t.Errorf("Forward.String() = %q, want %q", got, "box port 80 -> 127.0.0.1:10080")
	}
}

func TestDefaultForwardsFreePorts(t *testing.T) {
	forwards, err := DefaultForwards(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(forwards) != len(BoxPorts()) {
		t.Fatalf("DefaultForwards(0) returned %d forwards, want %d", len(forwards), len(BoxPorts()))
	}

	seen := make(map[int]bool)
	for i, f := range forwards {
		if f.GuestPort != BoxPorts()[i] {
			t.Errorf("forward %d: box port %d, want %d", i, f.GuestPort, BoxPorts()[i])
		}
		if f.HostPort == 0 || seen[f.HostPort] {
			t.Errorf("forward %v: got host port %d, want a nonzero port used once", f, f.HostPort)
		}
		seen[f.HostPort] = true

		// The port must be free right after, so that QEMU can bind it.
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(f.HostPort))
		if err != nil {
			t.Errorf("binding the picked port %d: %v", f.HostPort, err)
			continue
		}
		ln.Close()
	}
}

func TestDefaultForwardsInvalidOffset(t *testing.T) {
	for _, offset := range []int{-1, 60267, 70000} {
		if forwards, err := DefaultForwards(offset); err == nil {
			t.Errorf("DefaultForwards(%d) = %v, want an error", offset, forwards)
		}
	}
	// 65535 - 5269 is the largest offset that keeps every port valid.
	if _, err := DefaultForwards(60266); err != nil {
		t.Errorf("DefaultForwards(60266): %v", err)
	}
}

func TestValidateForwards(t *testing.T) {
	for _, tc := range []struct {
		name     string
		forwards []Forward
		wantErr  string
	}{
		{"valid", []Forward{{80, 10080}, {443, 0}, {25, 0}}, ""},
		{"box port zero", []Forward{{0, 10080}}, "invalid box port 0"},
		{"box port too large", []Forward{{65536, 10080}}, "invalid box port 65536"},
		{"host port negative", []Forward{{80, -1}}, "invalid host port -1"},
		{"box port twice", []Forward{{80, 10080}, {80, 10081}}, "box port 80 is forwarded twice"},
		{"host port twice", []Forward{{80, 10080}, {443, 10080}}, "host port 10080 is used by two forwards"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateForwards(tc.forwards)
			checkError(t, err, tc.wantErr)
		})
	}
}

func TestGuestForwardValidate(t *testing.T) {
	for _, tc := range []struct {
		guest    string
		hostPort int
		wantErr  string
	}{
		{"10.0.2.100:25", 2525, ""},
		{"10.0.2.4:25", 2525, ""},
		{"10.0.2.31:25", 2525, ""},
		{"10.0.3.1:25", 2525, "outside QEMU's user network"},
		{"192.168.1.1:25", 2525, "outside QEMU's user network"},
		{"10.0.2.2:25", 2525, "uses that address itself"},
		{"10.0.2.3:53", 2525, "uses that address itself"},
		{"10.0.2.15:25", 2525, "DHCP range"},
		{"10.0.2.30:25", 2525, "DHCP range"},
		{"10.0.2.0:25", 2525, "network or broadcast"},
		{"10.0.2.255:25", 2525, "network or broadcast"},
		{"10.0.2.100:0", 2525, "missing port"},
		{"10.0.2.100:25", 0, "invalid host port 0"},
		{"10.0.2.100:25", 65536, "invalid host port 65536"},
	} {
		t.Run(tc.guest, func(t *testing.T) {
			g := GuestForward{Guest: netip.MustParseAddrPort(tc.guest), HostPort: tc.hostPort}
			checkError(t, g.validate(), tc.wantErr)
		})
	}
}

func TestGuestForwardRule(t *testing.T) {
	g := GuestForward{Guest: netip.MustParseAddrPort("10.0.2.100:25"), HostPort: 2525}
	if got, want := g.guestfwd("/usr/bin/nc"), "tcp:10.0.2.100:25-cmd:/usr/bin/nc -N 127.0.0.1 2525"; got != want {
		t.Errorf("guestfwd rule = %q, want %q", got, want)
	}
	// A comma in the program's path must not end QEMU's option value.
	if got, want := g.guestfwd("/opt/a,b/nc"), "tcp:10.0.2.100:25-cmd:/opt/a,,b/nc -N 127.0.0.1 2525"; got != want {
		t.Errorf("guestfwd rule = %q, want %q", got, want)
	}
	if got, want := g.String(), "10.0.2.100:25 in the box -> 127.0.0.1:2525"; got != want {
		t.Errorf("GuestForward.String() = %q, want %q", got, want)
	}
}

// checkError checks that err contains wantErr, or is nil when wantErr is
// empty.
func checkError(t *testing.T, err error, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("got error %q, want none", err)
	case wantErr != "" && err == nil:
		t.Errorf("got no error, want one containing %q", wantErr)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Errorf("got error %q, want one containing %q", err, wantErr)
	}
}
