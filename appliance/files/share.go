package files

import "database/sql"

// ShareStore keeps the share links: public URLs for a file or folder.
type ShareStore struct{ db *sql.DB }
