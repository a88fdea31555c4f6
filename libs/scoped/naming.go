package scoped

import "strings"

// The physical name of an experiment's collection.
//
// An experiment's collection is "x." + slug + "." + base. Slugs are
// [a-z0-9_-] and base names [A-Za-z0-9_]: neither may contain '.', so the
// name has exactly two dots, and the slug and the base are what lies
// between them and after the second; two different (slug, base) pairs can
// never give one name. The platform's own collections (users,
// experiments_config, shared_*, ...) have no '.', so no experiment's name
// is ever one of them. The prefix keeps the names clear of the store's own
// namespaces: a slug "system" would otherwise make "system.{base}", which
// MongoDB reserves.
//
// Before this naming, collections were "{slug}_{base}", which is
// ambiguous (slug "p" with "x_notes" and slug "p_x" with "notes" are both
// p_x_notes); MigrateNames moves such collections' documents to their new
// names.

// collectionPrefix starts every experiment collection's name.
const collectionPrefix = "x."

// CollectionName is the physical collection of the experiment slug's base
// collection. It does not check its arguments: a Scope does, and other
// callers name only slugs and base names they have checked.
func CollectionName(slug, base string) string {
	return collectionPrefix + slug + "." + base
}

// CollectionPrefix starts the name of every collection of the experiment
// slug, and of no other experiment's.
func CollectionPrefix(slug string) string { return collectionPrefix + slug + "." }

// ParseCollectionName is the inverse of CollectionName: the slug and base
// of an experiment collection's name, ok false for any other name.
func ParseCollectionName(name string) (slug, base string, ok bool) {
	rest, found := strings.CutPrefix(name, collectionPrefix)
	if !found {
		return "", "", false
	}
	slug, base, found = strings.Cut(rest, ".")
	if !found || !slugSyntax.MatchString(slug) || !baseSyntax.MatchString(base) {
		return "", "", false
	}
	return slug, base, true
}
