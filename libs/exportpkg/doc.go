// Package exportpkg writes and reads experiment export packages: the ZIP
// archives of GET /api/exports/{id}/download.
//
// Write builds a package as a stream, straight into the writer it is given
// (the export store), computing its size and SHA-256 on the way; nothing is
// ever held whole in memory, however much data the experiment has. Open and
// OpenDir read a package back (a ZIP, or a directory it was unpacked into),
// and Import loads its data into a database; `gnome standalone` uses them.
//
// # Types
//
//   - upload-ready: the current version's bundle, which uploads again as is
//     (it gives the same bundle checksum).
//   - standalone: the bundle, the experiment's data and configuration, and a
//     README; `bin/gnome standalone <package.zip>` runs it alone.
//   - docker: the standalone package plus a Dockerfile, a docker-compose.yml
//     (the gnome image and a MongoDB replica set) and DEPLOY.md.
//
// # Format (version 2)
//
// A package is a ZIP archive (stored and deflate entries only, no
// directories, names in UTF-8, ZIP64 where sizes need it). Readers use the
// central directory; they ignore entries that this format does not name and
// that export.json does not list, so later versions may add files.
//
// upload-ready:
//
//	manifest.json, ...          the bundle's files at the root, as in its
//	                            normalised ZIP (bundle.Bundle.Normalise)
//	.gnome/export.json          the package's description (below)
//
// standalone:
//
//	experiments/{slug}/...      the bundle's files (the original platform's
//	                            export layout, which uploads accept)
//	.gnome/config.json          the experiment's experiments_config record,
//	                            relaxed Extended JSON
//	.gnome/data/{name}.jsonl    one file per collection {slug}_{name} that
//	                            holds documents of the experiment
//	.gnome/accounts.jsonl       format 2: the experiment's accounts (the
//	                            experiment_users collection, slug = {slug}),
//	                            one canonical Extended JSON document a line,
//	                            as stored: password hashes, never passwords
//	.gnome/kv.jsonl             format 2: the actor's key-value store, one
//	                            {"key", "value" (base64)} object a line,
//	                            under the actor's own key names
//	.gnome/runs.jsonl           format 2: the runs of its study links, one
//	                            JSON object a line (below)
//	.gnome/links.jsonl          format 2: its study links, one JSON object
//	                            a line, each with its claim (below)
//	README.md                   what is inside and how to run it
//	.gnome/export.json
//
// docker: the standalone files, and
//
//	Dockerfile                  FROM the gnome image (Meta.Image), copies the
//	                            unpacked package to /srv/export and runs
//	                            `gnome standalone /srv/export`
//	docker-compose.yml          that image beside a one-member MongoDB
//	                            replica set (mongo:7, --replSet rs0, initiated
//	                            by its health check); MONGO_URI points at it
//	DEPLOY.md                   how to start it
//
// A container gets the package by its build context: the user unpacks the
// docker package and runs `docker compose up --build` in that directory, so
// the image holds the unpacked package and `gnome standalone` reads it with
// OpenDir. At each start it imports the data with ImportKeepExisting, so that
// a restart keeps what changed since.
//
// In the archive, the bundle's files come first (sorted, as in the bundle),
// then config.json, the data files by collection name, README.md,
// Dockerfile, docker-compose.yml, DEPLOY.md, and export.json last, since it
// counts and hashes the data.
//
// Upload-ready and standalone packages both pass libs/bundle: uploads drop
// .gnome/ (bundle.PlatformDir) and, in the export layout, everything outside
// experiments/{slug}/ (README.md, Dockerfile, ...), so the files that remain
// are the bundle's. Bundle entries are copied without being recompressed,
// except one that would look like a zip bomb to an upload (over
// bundle.DefaultRatioFloor bytes, packed more than bundle.DefaultMaxRatio
// times), which is stored instead: the files, and so the checksum of the
// normalised bundle, are the same either way.
//
// .gnome/export.json is a JSON object (Meta):
//
//	format            2 (FormatVersion); readers refuse a newer format and
//	                  read format 1 (no accounts, kv, links or runs) as
//	                  before
//	type              "upload-ready" | "standalone" | "docker"
//	slug, name        the experiment's
//	version           the exported version's number
//	checksum          the bundle's checksum: hex SHA-256 of its normalised ZIP
//	created_at        RFC 3339, UTC
//	platform_version  the version of the platform that wrote the package
//	bundle_dir        "" (files at the root) or "experiments/{slug}/"
//	files             the number of the bundle's files
//	collections       [{name, collection, file, documents, sha256}], by name:
//	                  name is the base name, collection the full name
//	                  ({slug}_{name}), file the data entry, documents its
//	                  line count and sha256 the hex SHA-256 of its bytes as
//	                  unpacked; [] for upload-ready
//	documents         the sum of the collections' documents
//	image             docker only: the image the Dockerfile builds from
//	accounts, kv,     format 2, absent when empty and in upload-ready
//	links, runs       packages: {file, entries, sha256} of accounts.jsonl,
//	                  kv.jsonl, links.jsonl and runs.jsonl (entries is the
//	                  line count; runs only beside links)
//
// A data file holds one document per line: canonical Extended JSON
// (https://www.mongodb.com/docs/manual/reference/mongodb-extended-json/),
// so that types survive (ObjectId, dates, 32- and 64-bit integers, doubles,
// binary, ...), and a newline. Every document of every collection whose name
// begins with {slug}_ and whose experiment_id is the slug is exported, in
// the store's natural order, with experiment_id kept; documents of other
// experiments are not, even in a collection whose name another experiment's
// shares (slugs may contain "_": experiment "a_b"'s collection "c" and
// experiment "a"'s "b_c" are both a_b_c, and the one collection then holds
// both experiments' documents). A collection with no document of the
// experiment has no data file. Base names follow the scoped library's
// syntax (^[A-Za-z0-9_]{1,64}$); a {slug}_ collection whose rest does not is
// not the experiment's (it cannot reach it) and is reported in
// Summary.Skipped.
//
// Accounts, keys, runs and links come after the data files, in that
// order, before README.md. Readers refuse an account of another
// experiment, one whose _id is not "{slug}/{email}", one without ID or
// password hash, and one with a field an account does not have (a plain
// password above all); and a key outside the actor's key syntax or a value
// over 64 KiB.
//
// A line of links.jsonl is a study link as stored (store.StudyLink):
// {"id", "slug", "kind" (single | multi | personal), "label",
// "completion_url", "completion_code", "run", "revoked", "revoked_at",
// "created_by", "created_at"}, where run is the run that claimed a
// single-use or personal link (the study_link_claims document {_id: link,
// run}), absent while unclaimed: the claim travels inside its link, so
// that a used single-use link stays used after an import and a package
// cannot claim a link it lacks. A line of runs.jsonl is a run
// (store.StudyRun): {"id", "slug", "link", "participant", "params",
// "opened_at", "started", "started_at", "finished", "finished_at"}. Times
// are RFC 3339. At most MaxLinks links and MaxRuns runs. The runs are
// read from the store before the links: a claim is stored before its run,
// so every run of a single-use or personal link finds its claim. Readers
// refuse, with the file and line, an unknown field, a second value on a
// line, a record of another experiment, an ID twice or not of the
// 22-character shape the edge opens, an unknown kind, a label on a link
// that is not personal (or none on one that is), a completion URL or
// code that link creation refuses, a claim of a multi-use link or of a run
// another link claims, a run of a link not in the package or, for a
// single-use or personal link, other than its claim's, URL parameters an
// opening refuses, and times that do not match a run's state (finished
// but not started, started without started_at, ...).
//
// Import inserts only the accounts, keys, links, claims and runs that
// are not there, in either mode: a link revoked or used, or a run
// finished, since stays so.
//
// Readers check that every listed data file is there, that its document
// count and SHA-256 match export.json, and that every document has an _id
// and the package's experiment_id.
package exportpkg
