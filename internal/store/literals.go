package store

import "strconv"

// The values a list filters on most (a team, a requester, a template, a
// state) are written into its query's text rather than sent as parameters.
// A statement without parameters is planned once per connection, with those
// values, and pgx keeps it prepared; one with parameters is planned again
// on every call, because PostgreSQL keeps a generic plan only when it looks
// as cheap as the ones made for the values, which for these queries it
// never did. Planning was most of the VM list query's time. Only integers
// and the known request states are written so; anything else stays a
// parameter.

// idLiteral writes an id into a query.
func idLiteral(id int64) string { return strconv.FormatInt(id, 10) }

// stateLiteral writes a state into a query, quoted, when it is one of the
// request states (validState); ok is false for anything else, which the
// caller sends as a parameter.
func stateLiteral(s State) (string, bool) {
	if !validState(s) {
		return "", false
	}
	return "'" + string(s) + "'", true
}
