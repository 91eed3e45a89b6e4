package dav

import (
	"time"

	"github.com/libdns/libdns"
)

// DNSRecords returns the records that let clients find the CalDAV and
// CardDAV service of a zone from its name alone (RFC 6764 sections 3 and
// 4). They are SRV records for _caldavs._tcp and _carddavs._tcp that point
// at host on port 443, and TXT records with the context path. Names are
// relative to the zone, as libdns expects, and host is the fully qualified
// name of the box, such as "cloud.example.org.".
func DNSRecords(host string, ttl time.Duration) []libdns.Record {
	var records []libdns.Record
	for _, service := range []string{"caldavs", "carddavs"} {
		records = append(records,
			libdns.SRV{Service: service, Transport: "tcp", Name: "@", TTL: ttl, Priority: 0, Weight: 1, Port: 443, Target: host},
			libdns.TXT{Name: "_" + service + "._tcp", TTL: ttl, Text: "path=" + Prefix},
		)
	}
	return records
}
