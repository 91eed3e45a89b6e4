package smtp

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// loginServer implements the server side of the LOGIN mechanism, which
// Outlook and older clients use. No RFC defines it. The server sends two
// challenges, and the client returns the user name and then the password.
type loginServer struct {
	authenticate func(username, password string) error
	username     *string
}

func newLoginServer(authenticate func(username, password string) error) sasl.Server {
	return &loginServer{authenticate: authenticate}
}

func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch {
	case s.username == nil && response == nil:
		return []byte("Username:"), false, nil
	case s.username == nil:
		name := string(response)
		s.username = &name
		return []byte("Password:"), false, nil
	case response == nil:
		return nil, true, errors.New("missing password")
	}
	return nil, true, s.authenticate(*s.username, string(response))
}
