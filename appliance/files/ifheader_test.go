package files

import (
	"reflect"
	"testing"
)

func TestParseIf(t *testing.T) {
	tests := []struct {
		in   string
		want []ifList
	}{
		{`(<urn:uuid:1>)`, []ifList{{conditions: []ifCondition{{token: "urn:uuid:1"}}}}},
		{`(<urn:uuid:1> ["e1"]) (Not <DAV:no-lock> ["e1"])`, []ifList{
			{conditions: []ifCondition{{token: "urn:uuid:1"}, {etag: `"e1"`}}},
			{conditions: []ifCondition{{not: true, token: "DAV:no-lock"}, {etag: `"e1"`}}},
		}},
		{`<http://h/a> (<urn:uuid:2>)`, []ifList{{resource: "http://h/a", conditions: []ifCondition{{token: "urn:uuid:2"}}}}},
	}
	for _, tt := range tests {
		got, err := parseIf(tt.in)
		if err != nil {
			t.Errorf("parseIf(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseIf(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "()", "(Not)", "(<a>", "([e]", "x", "<a>"} {
		if _, err := parseIf(bad); err == nil {
			t.Errorf("parseIf(%q): got no error, want one", bad)
		}
	}
}

func FuzzParseIf(f *testing.F) {
	for _, seed := range []string{`(<urn:uuid:1>)`, `<http://h/a> (Not <DAV:no-lock> [W/"x"])`, `((`, `(Not Not <a>)`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lists, err := parseIf(s)
		if err != nil {
			return
		}
		again, err := parseIf(formatIf(lists))
		if err != nil || !reflect.DeepEqual(again, lists) {
			t.Errorf("formatIf(parseIf(%q)) does not parse back: %v", s, err)
		}
	})
}
