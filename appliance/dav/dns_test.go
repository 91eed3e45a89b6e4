package dav

import (
	"reflect"
	"testing"
	"time"
)

func TestDNSRecords(t *testing.T) {
	var got []string
	for _, r := range DNSRecords("cloud.example.org.", time.Hour) {
		rr := r.RR()
		got = append(got, rr.Type+" "+rr.Name+" "+rr.Data)
	}
	want := []string{
		"SRV _caldavs._tcp 0 1 443 cloud.example.org.",
		"TXT _caldavs._tcp path=/dav/",
		"SRV _carddavs._tcp 0 1 443 cloud.example.org.",
		"TXT _carddavs._tcp path=/dav/",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DNSRecords = %q, want %q", got, want)
	}
}
