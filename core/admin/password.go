package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/portcullis-gw/portcullis/internal/store"
)

// Errors of ChangePassword.
var (
	// ErrSamePassword: the new password is the old one.
	ErrSamePassword = errors.New("the new password is the old one")
	// ErrPasswordTooShort: under MinPasswordLength characters.
	ErrPasswordTooShort = fmt.Errorf("the new password is shorter than %d characters", MinPasswordLength)
)

// MinPasswordLength is the shortest password ChangePassword accepts (in
// characters); api.PasswordChange says the same to the front.
const MinPasswordLength = 12

// changeKey is the limiter key of a user's wrong old passwords: a stolen
// session cannot try old passwords faster than logins can.
func changeKey(username string) string { return "change:" + username }

// ChangePassword sets a new password for the admin of the session sid,
// which must give its current password: argon2id as at creation. The
// account's and the session's must-change flags are cleared, and every
// other session of that admin ends. It returns the updated session.
func (s *Service) ChangePassword(ctx context.Context, sid, oldPassword, newPassword string) (*Session, error) {
	sess, err := s.Authenticate(ctx, sid)
	if err != nil {
		return nil, err
	}
	user := sess.Username
	if len([]rune(newPassword)) < MinPasswordLength {
		return nil, ErrPasswordTooShort
	}
	if newPassword == oldPassword {
		return nil, ErrSamePassword
	}
	// The old password's check goes through the login limiter under a
	// source of its own: counted before the hash, one of the bounded hash
	// slots, refused once too many were wrong.
	att, err := s.limiter.Begin(ctx, user, changeKey(user))
	if err != nil {
		s.log.Warn("password change refused", "username", user, "err", err)
		return nil, err
	}
	var acc *Account
	if err := s.st.View(ctx, func(tx store.Tx) error {
		acc, err = store.GetJSON[Account](tx, store.BucketAdmins, user)
		return err
	}); err != nil {
		att.Done(Aborted)
		return nil, fmt.Errorf("change password: %w", err)
	}
	if !VerifyPassword(acc.Hash, oldPassword) {
		att.Done(Failed)
		s.log.Warn("password change refused: wrong old password", "username", user)
		return nil, ErrBadCredentials
	}
	att.Done(Succeeded)
	h, err := HashPassword(newPassword)
	if err != nil {
		return nil, err
	}
	keep := sessionKey(sid)
	err = s.st.Update(ctx, func(tx store.Tx) error {
		acc, err := store.GetJSON[Account](tx, store.BucketAdmins, user)
		if err != nil {
			return err
		}
		cur, err := store.GetJSON[Session](tx, store.BucketSessions, keep)
		if err != nil {
			return err // ended meanwhile
		}
		acc.Hash, acc.UpdatedAt, acc.MustChangePassword = h, s.now(), false
		if err := store.PutJSON(tx, store.BucketAdmins, user, acc); err != nil {
			return err
		}
		// Every session of the admin ends; this one is put back.
		if err := s.deleteSessions(tx, func(o *Session) bool { return o.Username == user }); err != nil {
			return err
		}
		cur.MustChangePassword = false
		sess = cur
		return store.PutJSON(tx, store.BucketSessions, keep, cur)
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	} else if err != nil {
		return nil, fmt.Errorf("change password: %w", err)
	}
	s.log.Info("admin password changed", "username", user)
	return sess, nil
}
