package accounts

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"strings"
	"time"
)

// TOTP as authenticator apps implement it: RFC 6238 with HMAC-SHA-1, 6
// digits and 30-second time steps counted from the Unix epoch.
const (
	totpDigits    = 6
	totpPeriod    = 30 // seconds
	totpSecretLen = 20 // bytes, the 160 bits that RFC 4226 section 4 recommends
)

// hotp returns the HOTP value for key and counter as a decimal string of
// digits characters (RFC 4226 section 5.3).
func hotp(key []byte, counter uint64, digits int) string {
	mac := hmac.New(sha1.New, key)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac.Write(msg[:])
	sum := mac.Sum(nil)

	// Dynamic truncation: the low 4 bits of the last byte select 4 bytes,
	// read as a big-endian number without the top bit.
	offset := sum[len(sum)-1] & 0x0f
	code := binary.BigEndian.Uint32(sum[offset:offset+4]) & 0x7fffffff

	out := make([]byte, digits)
	for i := digits - 1; i >= 0; i-- {
		out[i] = byte('0' + code%10)
		code /= 10
	}
	return string(out)
}

// totpStep returns the time step T of RFC 6238 section 4.2 for t, with
// T0 = 0 and X = 30 s.
func totpStep(t time.Time) int64 {
	return t.Unix() / totpPeriod
}

// matchTOTP returns the time step whose code is code, trying the step of now
// and one step either side for clock drift and typing time (RFC 6238 section
// 5.2). Only steps after lastStep count, so that an accepted code cannot be
// used again (section 5.2: the verifier must not accept the second attempt
// of an OTP). When several steps match, the latest wins.
func matchTOTP(secret []byte, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	code = strings.ReplaceAll(code, " ", "")
	if len(code) != totpDigits {
		return 0, false
	}

	current := totpStep(now)
	for s := current - 1; s <= current+1; s++ {
		if s < 0 {
			continue
		}
		want := hotp(secret, uint64(s), totpDigits)
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && s > lastStep {
			step, ok = s, true
		}
	}
	return step, ok
}
