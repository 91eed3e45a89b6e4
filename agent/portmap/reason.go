package portmap

import (
	"errors"
)

// classify returns the Reason for an error of a mapping request.
func classify(err error) Reason {
	switch upnpErrorCode(err) {
	case upnpActionNotAuthorized:
		return ReasonNotAllowed
	case upnpConflictInMappingEntry, 729: // 729: ConflictWithOtherMechanisms
		return ReasonPortInUse
	}

	var natpmp natpmpResultError
	if errors.As(err, &natpmp) && natpmp == 2 {
		return ReasonNotAllowed
	}
	var pcp pcpResultError
	if errors.As(err, &pcp) {
		switch pcp {
		case pcpNotAuthorized:
			return ReasonNotAllowed
		case pcpCannotProvideExternal:
			return ReasonPortInUse
		}
	}
	if errors.Is(err, errOtherPort) {
		return ReasonPortInUse
	}
	return ReasonRouterError
}

// moreSpecific returns whichever of a and b is more useful to the household
// for fixing the router: a taken port ranks above a rejection, which ranks
// above any other error.
func moreSpecific(a, b Reason) Reason {
	rank := map[Reason]int{"": 0, ReasonRouterError: 1, ReasonNotAllowed: 2, ReasonPortInUse: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
