package files

import (
	"context"
	"database/sql"
	"encoding/xml"
	"fmt"
	"net/http"
	"path"
	"unicode/utf8"

	"golang.org/x/net/webdav"

	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

// migrations is the schema of the component "files". A resource's path is
// split into its folder and name, so that PROPFIND Depth 1 reads the
// properties of a whole folder in one query. The root folder has the
// folder "" and the name ""; its children have the folder ".".
var migrations = []string{
	`CREATE TABLE files_props (
		root  TEXT NOT NULL, -- the folder tree: home/LOGIN, shared or website
		dir   TEXT NOT NULL,
		name  TEXT NOT NULL,
		ns    TEXT NOT NULL,
		local TEXT NOT NULL,
		lang  TEXT NOT NULL,
		inner BLOB NOT NULL, -- the property's XML content as the client sent it
		PRIMARY KEY (root, dir, name, ns, local)
	) WITHOUT ROWID;
	CREATE TABLE files_shares (
		id         INTEGER PRIMARY KEY,
		token_hash BLOB NOT NULL UNIQUE, -- SHA-256 of the link's token
		user_id    INTEGER NOT NULL,
		owner      TEXT NOT NULL, -- the login name of user_id
		root       TEXT NOT NULL, -- the folder tree, as files_props.root
		path       TEXT NOT NULL, -- relative to root, '.' for all of it
		is_dir     INTEGER NOT NULL,
		password   TEXT NOT NULL, -- PHC string of argon2id, or '' for none
		expires    INTEGER NOT NULL, -- Unix seconds, 0 for never
		uploads    INTEGER NOT NULL, -- a folder link that accepts uploads
		created    INTEGER NOT NULL
	);
	CREATE INDEX files_shares_user ON files_shares (user_id);`,
}

func migrate(ctx context.Context, db *sql.DB) error {
	return sqlitedb.Migrate(ctx, db, "files", migrations)
}

// propStore keeps WebDAV dead properties (RFC 4918 section 4) in SQLite.
type propStore struct{ db *sql.DB }

// requestProps reads and writes the properties of one folder tree for one
// request, and caches what it read per folder.
type requestProps struct {
	db    *sql.DB
	root  string
	cache map[string]map[string]map[xml.Name]webdav.Property // dir, name
}

func (s *propStore) forRequest(root string) *requestProps {
	return &requestProps{db: s.db, root: root}
}

func splitRel(rel string) (dir, name string) {
	if rel == "." {
		return "", ""
	}
	return path.Dir(rel), path.Base(rel)
}

// get returns a copy of the properties of rel.
func (p *requestProps) get(rel string) (map[xml.Name]webdav.Property, error) {
	dir, name := splitRel(rel)
	byName, err := p.folder(dir)
	if err != nil {
		return nil, err
	}
	props := make(map[xml.Name]webdav.Property, len(byName[name]))
	for k, v := range byName[name] {
		props[k] = v
	}
	return props, nil
}

// folder returns the properties of the entries of dir by name, as splitRel
// splits paths, with one query per folder and request. The caller must not
// change the maps.
func (p *requestProps) folder(dir string) (map[string]map[xml.Name]webdav.Property, error) {
	if byName, ok := p.cache[dir]; ok {
		return byName, nil
	}
	byName, err := p.load(dir)
	if err != nil {
		return nil, err
	}
	if p.cache == nil {
		p.cache = make(map[string]map[string]map[xml.Name]webdav.Property)
	}
	p.cache[dir] = byName
	return byName, nil
}

func (p *requestProps) load(dir string) (map[string]map[xml.Name]webdav.Property, error) {
	rows, err := p.db.Query(`SELECT name, ns, local, lang, inner FROM files_props WHERE root = ? AND dir = ?`, p.root, dir)
	if err != nil {
		return nil, fmt.Errorf("reading properties: %w", err)
	}
	defer rows.Close()
	byName := make(map[string]map[xml.Name]webdav.Property)
	for rows.Next() {
		var name string
		var prop webdav.Property
		if err := rows.Scan(&name, &prop.XMLName.Space, &prop.XMLName.Local, &prop.Lang, &prop.InnerXML); err != nil {
			return nil, fmt.Errorf("reading properties: %w", err)
		}
		if byName[name] == nil {
			byName[name] = make(map[xml.Name]webdav.Property)
		}
		byName[name][prop.XMLName] = prop
	}
	return byName, rows.Err()
}

// protected lists the properties that this package computes and clients
// cannot set (RFC 4331 section 3 and 4). The webdav package rejects the
// other live DAV: properties itself.
var protected = map[xml.Name]bool{quotaAvailable: true, quotaUsed: true}

// patch applies a PROPPATCH in one transaction: all changes or none
// (RFC 4918 section 9.2).
func (p *requestProps) patch(rel string, patches []webdav.Proppatch) ([]webdav.Propstat, error) {
	if stats, rejected := rejectProtected(patches); rejected {
		return stats, nil
	}
	p.cache = nil

	dir, name := splitRel(rel)
	tx, err := p.db.Begin()
	if err != nil {
		return nil, fmt.Errorf("writing properties: %w", err)
	}
	defer tx.Rollback()

	ok := webdav.Propstat{Status: http.StatusOK}
	for _, patch := range patches {
		for _, prop := range patch.Props {
			if patch.Remove {
				_, err = tx.Exec(`DELETE FROM files_props WHERE root = ? AND dir = ? AND name = ? AND ns = ? AND local = ?`,
					p.root, dir, name, prop.XMLName.Space, prop.XMLName.Local)
			} else {
				// An empty element has nil InnerXML, which the driver
				// would store as NULL.
				inner := prop.InnerXML
				if inner == nil {
					inner = []byte{}
				}
				_, err = tx.Exec(`INSERT OR REPLACE INTO files_props (root, dir, name, ns, local, lang, inner) VALUES (?, ?, ?, ?, ?, ?, ?)`,
					p.root, dir, name, prop.XMLName.Space, prop.XMLName.Local, prop.Lang, inner)
			}
			if err != nil {
				return nil, fmt.Errorf("writing properties: %w", err)
			}
			ok.Props = append(ok.Props, webdav.Property{XMLName: prop.XMLName})
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("writing properties: %w", err)
	}
	return []webdav.Propstat{ok}, nil
}

// rejectProtected fails the whole PROPPATCH if it touches a protected
// property: 403 for those, 424 for the rest (RFC 4918 section 9.2.1).
func rejectProtected(patches []webdav.Proppatch) ([]webdav.Propstat, bool) {
	forbidden := webdav.Propstat{
		Status:   http.StatusForbidden,
		XMLError: `<D:cannot-modify-protected-property xmlns:D="DAV:"/>`,
	}
	failed := webdav.Propstat{Status: webdav.StatusFailedDependency}
	for _, patch := range patches {
		for _, prop := range patch.Props {
			if protected[prop.XMLName] {
				forbidden.Props = append(forbidden.Props, webdav.Property{XMLName: prop.XMLName})
			} else {
				failed.Props = append(failed.Props, webdav.Property{XMLName: prop.XMLName})
			}
		}
	}
	if len(forbidden.Props) == 0 {
		return nil, false
	}
	if len(failed.Props) == 0 {
		return []webdav.Propstat{forbidden}, true
	}
	return []webdav.Propstat{forbidden, failed}, true
}

// deleteTree removes the properties of rel and everything below it.
func (p *requestProps) deleteTree(rel string) error {
	p.cache = nil
	dir, name := splitRel(rel)
	_, err := p.db.Exec(`DELETE FROM files_props WHERE root = ? AND ((dir = ? AND name = ?) OR dir = ? OR substr(dir, 1, ?) = ?)`,
		p.root, dir, name, rel, utf8.RuneCountInString(rel)+1, rel+"/")
	if err != nil {
		return fmt.Errorf("deleting properties: %w", err)
	}
	return nil
}

// moveTree moves the properties of oldRel and everything below it to
// newRel, replacing what newRel had. SQLite's substr counts characters,
// hence the rune counts.
func (p *requestProps) moveTree(oldRel, newRel string) error {
	p.cache = nil
	tx, err := p.db.Begin()
	if err != nil {
		return fmt.Errorf("moving properties: %w", err)
	}
	defer tx.Rollback()

	newDir, newName := splitRel(newRel)
	oldDir, oldName := splitRel(oldRel)
	oldLen := utf8.RuneCountInString(oldRel)
	statements := []struct {
		query string
		args  []any
	}{
		{`DELETE FROM files_props WHERE root = ? AND ((dir = ? AND name = ?) OR dir = ? OR substr(dir, 1, ?) = ?)`,
			[]any{p.root, newDir, newName, newRel, utf8.RuneCountInString(newRel) + 1, newRel + "/"}},
		{`UPDATE files_props SET dir = ?, name = ? WHERE root = ? AND dir = ? AND name = ?`,
			[]any{newDir, newName, p.root, oldDir, oldName}},
		{`UPDATE files_props SET dir = ? || substr(dir, ?) WHERE root = ? AND (dir = ? OR substr(dir, 1, ?) = ?)`,
			[]any{newRel, oldLen + 1, p.root, oldRel, oldLen + 1, oldRel + "/"}},
	}
	for _, st := range statements {
		if _, err := tx.Exec(st.query, st.args...); err != nil {
			return fmt.Errorf("moving properties: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("moving properties: %w", err)
	}
	return nil
}
