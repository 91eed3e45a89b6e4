// Package i18n holds the message catalogs for everything a household reads:
// pages, error pages and notices, in German and English. Every key must exist
// in every language; the package's tests enforce that.
package i18n

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"golang.org/x/text/language"
)

//go:embed catalog/*.json
var catalogFiles embed.FS

// Languages lists the supported languages. The first is the fallback for a
// browser that requests none of them.
var Languages = []language.Tag{language.English, language.German}

var matcher = language.NewMatcher(Languages)

// Catalog maps a language code ("en", "de") to its messages by key.
type Catalog map[string]map[string]string

// Load reads the embedded catalogs. A file is named LANG.json or
// AREA.LANG.json (setup.de.json); the areas of one language merge into one
// catalog, and a key defined twice is an error.
func Load() (Catalog, error) {
	entries, err := catalogFiles.ReadDir("catalog")
	if err != nil {
		return nil, err
	}
	c := Catalog{}
	for _, e := range entries {
		b, err := catalogFiles.ReadFile(path.Join("catalog", e.Name()))
		if err != nil {
			return nil, err
		}
		msgs := map[string]string{}
		if err := json.Unmarshal(b, &msgs); err != nil {
			return nil, fmt.Errorf("parsing catalog %s: %w", e.Name(), err)
		}
		base := strings.TrimSuffix(e.Name(), ".json")
		lang := base[strings.LastIndex(base, ".")+1:]
		if c[lang] == nil {
			c[lang] = map[string]string{}
		}
		for k, v := range msgs {
			if _, dup := c[lang][k]; dup {
				return nil, fmt.Errorf("catalog %s: key %q is already defined in another %s catalog file", e.Name(), k, lang)
			}
			c[lang][k] = v
		}
	}
	return c, nil
}

// MustLoad is Load for program start, where a broken embedded catalog is a
// build defect.
func MustLoad() Catalog {
	c, err := Load()
	if err != nil {
		panic(err)
	}
	return c
}

// T returns the message for key in lang, falling back to English, and to the
// key itself so that a missing message shows up instead of an empty string.
func (c Catalog) T(lang, key string) string {
	if msg, ok := c[lang][key]; ok {
		return msg
	}
	if msg, ok := c["en"][key]; ok {
		return msg
	}
	return key
}

// Missing lists "lang: key" for every key that one language has and another
// lacks, sorted.
func (c Catalog) Missing() []string {
	all := map[string]bool{}
	for _, msgs := range c {
		for k := range msgs {
			all[k] = true
		}
	}
	var missing []string
	for _, tag := range Languages {
		lang := tag.String()
		for k := range all {
			if _, ok := c[lang][k]; !ok {
				missing = append(missing, lang+": "+k)
			}
		}
	}
	sort.Strings(missing)
	return missing
}

// Negotiate picks the language for a request: an explicit choice ("de", "en")
// wins, then the browser's Accept-Language header, then English.
func Negotiate(choice, acceptLanguage string) string {
	for _, tag := range Languages {
		if choice == tag.String() {
			return choice
		}
	}
	tags, _, _ := language.ParseAcceptLanguage(acceptLanguage)
	_, index, _ := matcher.Match(tags...)
	return Languages[index].String()
}
