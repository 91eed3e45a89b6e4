package dav

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/heimwolke/heimwolke/packages/i18n"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
)

// migrations of the "dav" component. Every change to a collection's
// members increments dav_collections.seq and records the member's name
// with the new seq in dav_changes, one row per name. So a sync token is a
// seq, and the changes since it are the rows with a larger seq. Deleted
// members stay there as tombstones. range_start and range_end bound an
// object's occurrences in Unix seconds (NULL: unbounded) for a fast first
// pass of time-range queries.
var migrations = []string{`
CREATE TABLE dav_homes (
	login TEXT PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE dav_collections (
	id         INTEGER PRIMARY KEY,
	owner      TEXT NOT NULL,
	kind       INTEGER NOT NULL,
	name       TEXT NOT NULL,
	components TEXT NOT NULL,
	sync_id    TEXT NOT NULL,
	seq        INTEGER NOT NULL DEFAULT 0,
	UNIQUE (owner, kind, name)
);

CREATE TABLE dav_collection_props (
	collection_id INTEGER NOT NULL REFERENCES dav_collections (id) ON DELETE CASCADE,
	space         TEXT NOT NULL,
	local         TEXT NOT NULL,
	value         TEXT NOT NULL,
	PRIMARY KEY (collection_id, space, local)
) WITHOUT ROWID;

CREATE TABLE dav_objects (
	collection_id INTEGER NOT NULL REFERENCES dav_collections (id) ON DELETE CASCADE,
	name          TEXT NOT NULL,
	uid           TEXT,
	etag          TEXT NOT NULL,
	modified      INTEGER NOT NULL,
	range_start   INTEGER,
	range_end     INTEGER,
	data          BLOB NOT NULL,
	PRIMARY KEY (collection_id, name)
);
CREATE UNIQUE INDEX dav_objects_uid ON dav_objects (collection_id, uid);

CREATE TABLE dav_changes (
	collection_id INTEGER NOT NULL REFERENCES dav_collections (id) ON DELETE CASCADE,
	name          TEXT NOT NULL,
	seq           INTEGER NOT NULL,
	deleted       INTEGER NOT NULL,
	PRIMARY KEY (collection_id, name)
) WITHOUT ROWID;
CREATE INDEX dav_changes_seq ON dav_changes (collection_id, seq);
`}

// householdOwner owns the household's collections. Login names cannot
// contain "@", so it never collides with a user.
const householdOwner = "@household"

// householdName is the URL segment under which every user's homes show
// the household's collections.
const householdName = "household"

var (
	errNotFound = errors.New("not found")
	errExists   = errors.New("already exists")
)

// store keeps collections and objects in the box's SQLite database.
type store struct {
	db      *sql.DB
	catalog i18n.Catalog
	now     func() time.Time

	mu    sync.Mutex
	homes map[string]bool // logins whose default collections exist
}

func openStore(ctx context.Context, db *sql.DB) (*store, error) {
	if err := sqlitedb.Migrate(ctx, db, "dav", migrations); err != nil {
		return nil, err
	}
	catalog, err := i18n.Load()
	if err != nil {
		return nil, err
	}
	return &store{db: db, catalog: catalog, now: time.Now, homes: map[string]bool{}}, nil
}

// collection is a calendar or an address book.
type collection struct {
	id         int64
	owner      string
	kind       kind
	name       string
	components []string // for calendars: VEVENT, VTODO
	syncID     string
	seq        int64
	props      map[xml.Name]string // dead properties, values as XML
}

// urlName is the segment under which the collection appears in a home.
func (c *collection) urlName() string {
	if c.owner == householdOwner {
		return householdName
	}
	return c.name
}

// syncToken is the collection's current sync token (RFC 6578 section
// 3.2), also used as its getctag. The random sync ID makes the tokens of
// a deleted collection invalid for a new one of the same name.
func (c *collection) syncToken() string {
	return syncTokenPrefix + c.syncID + "-" + fmt.Sprint(c.seq)
}

const syncTokenPrefix = "urn:heimwolke:sync:"

func (c *collection) supports(component string) bool {
	for _, comp := range c.components {
		if comp == component {
			return true
		}
	}
	return false
}

// defaultCollection describes a collection that every user starts with.
type defaultCollection struct {
	kind       kind
	name       string
	components []string
	titleKey   string
}

var userDefaults = []defaultCollection{
	{kindCalendar, "calendar", []string{"VEVENT"}, "dav.default.calendar"},
	{kindCalendar, "tasks", []string{"VTODO"}, "dav.default.tasks"},
	{kindAddressBook, "contacts", nil, "dav.default.contacts"},
}

var householdDefaults = []defaultCollection{
	{kindCalendar, householdName, []string{"VEVENT", "VTODO"}, "dav.household.calendar"},
	{kindAddressBook, householdName, nil, "dav.household.contacts"},
}

// ensureHome creates the default collections of login and of the
// household once. A user who deleted a default collection does not get
// it back, because dav_homes remembers that the defaults were made.
func (s *store) ensureHome(ctx context.Context, login, lang string) error {
	s.mu.Lock()
	done := s.homes[login]
	s.mu.Unlock()
	if done {
		return nil
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	if err := s.createDefaults(ctx, tx, householdOwner, lang, householdDefaults); err != nil {
		return err
	}
	if err := s.createDefaults(ctx, tx, login, lang, userDefaults); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}

	s.mu.Lock()
	s.homes[login] = true
	s.mu.Unlock()
	return nil
}

func (s *store) createDefaults(ctx context.Context, tx *sql.Tx, owner, lang string, defaults []defaultCollection) error {
	res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO dav_homes (login) VALUES (?)`, owner)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	for _, d := range defaults {
		c := &collection{
			owner:      owner,
			kind:       d.kind,
			name:       d.name,
			components: d.components,
			props:      map[xml.Name]string{{Space: nsDAV, Local: "displayname"}: escape(s.catalog.T(lang, d.titleKey))},
		}
		if err := insertCollection(ctx, tx, c); err != nil {
			return fmt.Errorf("creating default %s %q of %s: %w", d.kind, d.name, owner, err)
		}
	}
	return nil
}

func newSyncID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func insertCollection(ctx context.Context, tx *sql.Tx, c *collection) error {
	c.syncID = newSyncID()
	res, err := tx.ExecContext(ctx, `INSERT INTO dav_collections (owner, kind, name, components, sync_id) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, c.owner, c.kind, c.name, strings.Join(c.components, ","), c.syncID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return errExists
	}
	if c.id, err = res.LastInsertId(); err != nil {
		return err
	}
	return writeProps(ctx, tx, c.id, c.props, nil)
}

// createCollection creates c, or returns errExists.
func (s *store) createCollection(ctx context.Context, c *collection) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := insertCollection(ctx, tx, c); err != nil {
		return err
	}
	return tx.Commit()
}

// ownerOf returns the owner of the collection that appears as urlName in
// login's home.
func ownerOf(login, urlName string) (owner, name string) {
	if urlName == householdName {
		return householdOwner, householdName
	}
	return login, urlName
}

// collection returns the collection that appears as urlName in login's
// home of kind k, or errNotFound.
func (s *store) collection(ctx context.Context, login string, k kind, urlName string) (*collection, error) {
	owner, name := ownerOf(login, urlName)
	rows, err := s.db.QueryContext(ctx, `SELECT id, owner, kind, name, components, sync_id, seq FROM dav_collections
		WHERE owner = ? AND kind = ? AND name = ?`, owner, k, name)
	if err != nil {
		return nil, err
	}
	cs, err := s.scanCollections(ctx, rows)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, errNotFound
	}
	return cs[0], nil
}

// collections returns login's collections of kind k and the household's.
func (s *store) collections(ctx context.Context, login string, k kind) ([]*collection, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, owner, kind, name, components, sync_id, seq FROM dav_collections
		WHERE owner IN (?, ?) AND kind = ? ORDER BY owner = ?, name`, login, householdOwner, k, householdOwner)
	if err != nil {
		return nil, err
	}
	return s.scanCollections(ctx, rows)
}

func (s *store) scanCollections(ctx context.Context, rows *sql.Rows) ([]*collection, error) {
	var cs []*collection
	for rows.Next() {
		c := &collection{}
		var comps string
		if err := rows.Scan(&c.id, &c.owner, &c.kind, &c.name, &comps, &c.syncID, &c.seq); err != nil {
			rows.Close()
			return nil, err
		}
		if comps != "" {
			c.components = strings.Split(comps, ",")
		}
		cs = append(cs, c)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, c := range cs {
		if err := s.loadProps(ctx, c); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

func (s *store) loadProps(ctx context.Context, c *collection) error {
	rows, err := s.db.QueryContext(ctx, `SELECT space, local, value FROM dav_collection_props WHERE collection_id = ?`, c.id)
	if err != nil {
		return err
	}
	defer rows.Close()
	c.props = map[xml.Name]string{}
	for rows.Next() {
		var n xml.Name
		var v string
		if err := rows.Scan(&n.Space, &n.Local, &v); err != nil {
			return err
		}
		c.props[n] = v
	}
	return rows.Err()
}

// setProps stores and removes dead properties of a collection in one
// transaction.
func (s *store) setProps(ctx context.Context, id int64, set map[xml.Name]string, remove []xml.Name) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := writeProps(ctx, tx, id, set, remove); err != nil {
		return err
	}
	return tx.Commit()
}

func writeProps(ctx context.Context, tx *sql.Tx, id int64, set map[xml.Name]string, remove []xml.Name) error {
	for n, v := range set {
		_, err := tx.ExecContext(ctx, `INSERT INTO dav_collection_props (collection_id, space, local, value) VALUES (?, ?, ?, ?)
			ON CONFLICT DO UPDATE SET value = excluded.value`, id, n.Space, n.Local, v)
		if err != nil {
			return err
		}
	}
	for _, n := range remove {
		_, err := tx.ExecContext(ctx, `DELETE FROM dav_collection_props WHERE collection_id = ? AND space = ? AND local = ?`, id, n.Space, n.Local)
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteUser removes login's collections and the record that their
// defaults were made, so that a new user of the same name starts afresh.
func (s *store) deleteUser(ctx context.Context, login string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM dav_collections WHERE owner = ?`, login); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM dav_homes WHERE login = ?`, login); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.homes, login)
	s.mu.Unlock()
	return nil
}

// deleteCollection removes a collection with its objects and change log.
func (s *store) deleteCollection(ctx context.Context, id int64) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM dav_collections WHERE id = ?`, id)
	return err
}

// object is a calendar object resource or a vCard.
type object struct {
	name     string
	etag     string // without quotes
	modified time.Time
	size     int64
	data     []byte // as the client sent it; nil when not loaded
}

// etagOf returns the strong entity tag of data: the same bytes always get
// the same tag, and GET returns exactly these bytes.
func etagOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

// object returns the named object of collection id, or errNotFound.
func (s *store) object(ctx context.Context, id int64, name string) (*object, error) {
	o := &object{name: name}
	var modified int64
	err := s.db.QueryRowContext(ctx, `SELECT etag, modified, data FROM dav_objects WHERE collection_id = ? AND name = ?`, id, name).
		Scan(&o.etag, &modified, &o.data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	o.modified = time.Unix(modified, 0)
	o.size = int64(len(o.data))
	return o, nil
}

// objects returns the objects of collection id, with their data when
// withData is set. A non-nil window keeps only the objects whose
// occurrences may fall into it.
func (s *store) objects(ctx context.Context, id int64, withData bool, window *timeWindow) ([]*object, error) {
	cols := "name, etag, modified, length(data)"
	if withData {
		cols += ", data"
	}
	query := `SELECT ` + cols + ` FROM dav_objects WHERE collection_id = ?`
	args := []any{id}
	if window != nil {
		query += ` AND (range_end IS NULL OR range_end >= ?) AND (range_start IS NULL OR range_start < ?)`
		args = append(args, window.startUnix(), window.endUnix())
	}
	rows, err := s.db.QueryContext(ctx, query+` ORDER BY name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()

	var objs []*object
	for rows.Next() {
		o := &object{}
		var modified int64
		dest := []any{&o.name, &o.etag, &modified, &o.size}
		if withData {
			dest = append(dest, &o.data)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		o.modified = time.Unix(modified, 0)
		objs = append(objs, o)
	}
	return objs, rows.Err()
}

// newObject is a checked PUT body with the values the store indexes.
type newObject struct {
	name       string
	uid        string // empty for a vCard without UID
	data       []byte
	rangeStart *int64
	rangeEnd   *int64
}

// preconditions are the conditional request headers of PUT and DELETE
// (RFC 9110 section 13.1.1 and 13.1.2).
type preconditions struct {
	ifMatch     string
	ifNoneMatch string
}

var (
	errPrecondition = errors.New("precondition failed")
	errUIDConflict  = errors.New("uid conflict")
)

// putObject stores o in collection id after checking pre against the
// stored version, in one transaction. It returns whether o is new and its
// ETag, errPrecondition, or errUIDConflict with the name that holds the
// UID.
func (s *store) putObject(ctx context.Context, id int64, o newObject, pre preconditions) (created bool, etag, conflict string, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, "", "", err
	}
	defer tx.Rollback()

	current, err := currentETag(ctx, tx, id, o.name)
	if err != nil {
		return false, "", "", err
	}
	if !pre.allow(current) {
		return false, "", "", errPrecondition
	}

	if o.uid != "" {
		err := tx.QueryRowContext(ctx, `SELECT name FROM dav_objects WHERE collection_id = ? AND uid = ? AND name != ?`, id, o.uid, o.name).Scan(&conflict)
		if err == nil {
			return false, "", conflict, errUIDConflict
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, "", "", err
		}
	}

	var uid any
	if o.uid != "" {
		uid = o.uid
	}
	etag = etagOf(o.data)
	_, err = tx.ExecContext(ctx, `INSERT INTO dav_objects (collection_id, name, uid, etag, modified, range_start, range_end, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO UPDATE SET uid = excluded.uid, etag = excluded.etag, modified = excluded.modified,
			range_start = excluded.range_start, range_end = excluded.range_end, data = excluded.data`,
		id, o.name, uid, etag, s.now().Unix(), o.rangeStart, o.rangeEnd, o.data)
	if err != nil {
		return false, "", "", err
	}
	if err := recordChange(ctx, tx, id, o.name, false); err != nil {
		return false, "", "", err
	}
	return current == "", etag, "", tx.Commit()
}

// deleteObject removes an object after checking pre, leaving a tombstone
// in the change log. It returns errNotFound or errPrecondition.
func (s *store) deleteObject(ctx context.Context, id int64, name string, pre preconditions) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	current, err := currentETag(ctx, tx, id, name)
	if err != nil {
		return err
	}
	if current == "" {
		return errNotFound
	}
	if !pre.allow(current) {
		return errPrecondition
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM dav_objects WHERE collection_id = ? AND name = ?`, id, name); err != nil {
		return err
	}
	if err := recordChange(ctx, tx, id, name, true); err != nil {
		return err
	}
	return tx.Commit()
}

func currentETag(ctx context.Context, tx *sql.Tx, id int64, name string) (string, error) {
	var etag string
	err := tx.QueryRowContext(ctx, `SELECT etag FROM dav_objects WHERE collection_id = ? AND name = ?`, id, name).Scan(&etag)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return etag, err
}

// recordChange bumps the collection's seq and records name under it.
func recordChange(ctx context.Context, tx *sql.Tx, id int64, name string, deleted bool) error {
	var seq int64
	if err := tx.QueryRowContext(ctx, `UPDATE dav_collections SET seq = seq + 1 WHERE id = ? RETURNING seq`, id).Scan(&seq); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO dav_changes (collection_id, name, seq, deleted) VALUES (?, ?, ?, ?)
		ON CONFLICT DO UPDATE SET seq = excluded.seq, deleted = excluded.deleted`, id, name, seq, deleted)
	return err
}

// change is an entry of a collection's change log.
type change struct {
	name    string
	seq     int64
	deleted bool
}

// changesSince returns the changes after seq, oldest first.
func (s *store) changesSince(ctx context.Context, id, seq int64) ([]change, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, seq, deleted FROM dav_changes WHERE collection_id = ? AND seq > ? ORDER BY seq`, id, seq)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var changes []change
	for rows.Next() {
		var c change
		if err := rows.Scan(&c.name, &c.seq, &c.deleted); err != nil {
			return nil, err
		}
		changes = append(changes, c)
	}
	return changes, rows.Err()
}
