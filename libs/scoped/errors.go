package scoped

import (
	"context"
	"errors"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// storeError turns a driver error into a catalogue error; op names what was
// done ("the find"). The store's own message is kept for the caller when the
// store refused the request.
func (s *Scope) storeError(op string, err error) error {
	var se mongo.ServerError
	switch {
	case errorsIsContext(err):
		return apierr.Wrap(apierr.CodeTimeout, err, op+" did not finish in time")
	case mongo.IsTimeout(err):
		return apierr.Wrap(apierr.CodeTimeout, err, op+" did not finish in time")
	case mongo.IsDuplicateKeyError(err):
		return apierr.Wrap(apierr.CodeConflict, err, op+" would duplicate a unique key")
	case mongo.IsNetworkError(err):
		return apierr.Wrap(apierr.CodeUnavailable, err, "the database is not available")
	case asServerError(err, &se):
		switch {
		case se.HasErrorCode(codeNotImplemented):
			return apierr.Wrap(apierr.CodeStoreUnsupported, err, "the store does not support "+op+": "+s.serverMessage(err))
		case hasAnyCode(se, tooLargeCodes):
			return apierr.Wrap(apierr.CodeScopeLimit, err, op+" is over the store's size limit")
		case hasAnyCode(se, unavailableCodes):
			return apierr.Wrap(apierr.CodeUnavailable, err, "the database is not available")
		case hasAnyCode(se, timeLimitCodes):
			return apierr.Wrap(apierr.CodeTimeout, err, op+" did not finish in time")
		case hasAnyCode(se, internalCodes):
			return apierr.Wrap(apierr.CodeInternal, err, "internal error")
		}
		return apierr.Wrap(apierr.CodeBadRequest, err, "the store refused "+op+": "+s.serverMessage(err))
	}
	return apierr.Wrap(apierr.CodeInternal, err, "internal error")
}

const codeNotImplemented = 238

var (
	tooLargeCodes    = []int{10334, 17419, 16493} // BSONObjectTooLarge and the document-too-large codes
	unavailableCodes = []int{6, 7, 89, 91, 189, 9001, 10107, 11600, 11602, 13435, 13436}
	timeLimitCodes   = []int{50, 262}
	internalCodes    = []int{13, 18, 8000} // Unauthorized, AuthenticationFailed, AtlasError
)

func errorsIsContext(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

func asServerError(err error, se *mongo.ServerError) bool { return errors.As(err, se) }

func hasAnyCode(se mongo.ServerError, codes []int) bool {
	for _, c := range codes {
		if se.HasErrorCode(c) {
			return true
		}
	}
	return false
}

// serverMessage is the store's explanation of a refusal, without the
// database name.
func (s *Scope) serverMessage(err error) string {
	msg := ""
	var (
		ce mongo.CommandError
		we mongo.WriteException
		be mongo.BulkWriteException
	)
	switch {
	case errors.As(err, &ce):
		msg = ce.Message
	case errors.As(err, &we) && len(we.WriteErrors) > 0:
		msg = we.WriteErrors[0].Message
	case errors.As(err, &be) && len(be.WriteErrors) > 0:
		msg = be.WriteErrors[0].Message
	default:
		msg = err.Error()
	}
	return strings.ReplaceAll(msg, s.db.Name()+".", "")
}
