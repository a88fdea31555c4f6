package scoped

import (
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// forbidden are refused as keys wherever they appear, in any letter case:
// they reach other collections or run code.
var forbidden = map[string]string{
	"$where":       "it runs JavaScript",
	"$function":    "it runs JavaScript",
	"$accumulator": "it runs JavaScript",
	"$lookup":      "it reads another collection",
	"$graphlookup": "it reads another collection",
	"$unionwith":   "it reads another collection",
	"$out":         "it writes another collection",
	"$merge":       "it writes another collection",
}

// allowedStages are the aggregation stages a pipeline may use.
var allowedStages = []string{"$match", "$project", "$group", "$sort", "$limit", "$skip", "$unwind", "$count", "$set", "$addFields"}

var stageAllowed = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range allowedStages {
		m[s] = true
	}
	return m
}()

// updateOperators are the update operators an update may use.
var updateOperators = map[string]bool{
	"$set": true, "$unset": true, "$inc": true, "$mul": true, "$min": true, "$max": true,
	"$rename": true, "$currentDate": true, "$setOnInsert": true,
	"$push": true, "$addToSet": true, "$pop": true, "$pull": true, "$pullAll": true, "$bit": true,
}

// walker checks a BSON value at every depth; path locates what it looks at
// for the error messages.
type walker struct {
	maxDepth int
	// stored is set for documents to be stored: their field names may not
	// start with '$' or contain '.', which the stores disagree about.
	stored bool
	path   []string
}

func (w *walker) push(seg string) { w.path = append(w.path, seg) }
func (w *walker) pop()            { w.path = w.path[:len(w.path)-1] }

func (w *walker) doc(d bson.Raw, depth int) error {
	if depth > w.maxDepth {
		return apierr.New(apierr.CodeScopeLimit, "%s is nested deeper than %d levels", render(w.path), w.maxDepth).OnField(pointer(w.path))
	}
	elems, err := d.Elements()
	if err != nil {
		return apierr.Wrap(apierr.CodeBadRequest, err, render(w.path)+" is not valid BSON").OnField(pointer(w.path))
	}
	for _, e := range elems {
		k := e.Key()
		w.push(k)
		if err := w.key(k); err != nil {
			return err
		}
		if err := w.value(e.Value(), depth); err != nil {
			return err
		}
		w.pop()
	}
	return nil
}

func (w *walker) key(k string) error {
	if strings.HasPrefix(k, "$") {
		if why, ok := forbidden[strings.ToLower(k)]; ok {
			return forbiddenOperator(k, why, w.path)
		}
		if w.stored {
			return apierr.New(apierr.CodeBadRequest, "field name %q at %s starts with '$'", k, render(w.path)).OnField(pointer(w.path))
		}
	}
	if w.stored && strings.Contains(k, ".") {
		return apierr.New(apierr.CodeBadRequest, "field name %q at %s contains '.'", k, render(w.path)).OnField(pointer(w.path))
	}
	return nil
}

func (w *walker) value(v bson.RawValue, depth int) error {
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		return w.doc(v.Document(), depth+1)
	case bson.TypeArray:
		if depth+1 > w.maxDepth {
			return apierr.New(apierr.CodeScopeLimit, "%s is nested deeper than %d levels", render(w.path), w.maxDepth).OnField(pointer(w.path))
		}
		vals, err := v.Array().Values()
		if err != nil {
			return apierr.Wrap(apierr.CodeBadRequest, err, render(w.path)+" is not valid BSON").OnField(pointer(w.path))
		}
		for i, x := range vals {
			w.push(strconv.Itoa(i))
			if err := w.value(x, depth+1); err != nil {
				return err
			}
			w.pop()
		}
	case bson.TypeJavaScript, bson.TypeCodeWithScope:
		return forbiddenOperator("JavaScript code", "it runs JavaScript", w.path)
	}
	return nil
}

func forbiddenOperator(op, why string, path []string) *apierr.Error {
	return apierr.New(apierr.CodeScopeForbiddenOperator, "%q is refused at %s: %s", op, render(path), why).OnField(pointer(path))
}

// render is a path for messages: filter.$and[0].$where.
func render(path []string) string {
	var b strings.Builder
	for i, seg := range path {
		if _, err := strconv.Atoi(seg); err == nil && i > 0 {
			b.WriteString("[" + seg + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	// Names come from the caller: quoting keeps control characters out of
	// messages and logs.
	q := strconv.Quote(b.String())
	return q[1 : len(q)-1]
}

// pointer is a path as a JSON pointer, for apierr.Error.Field.
func pointer(path []string) string {
	var b strings.Builder
	for _, seg := range path {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(seg))
	}
	return b.String()
}

// precheck looks at common Go shapes before they are marshalled: a key with
// NUL would be refused by the encoder with a less helpful message, and deep
// nesting is refused before the encoder recurses through it.
func precheck(v any, depth, maxDepth int, what string) error {
	if depth > maxDepth {
		return apierr.New(apierr.CodeScopeLimit, "%s is nested deeper than %d levels", what, maxDepth).OnField("/" + what)
	}
	key := func(k string) error {
		if strings.IndexByte(k, 0) >= 0 {
			return apierr.New(apierr.CodeBadRequest, "%s has a field name with a NUL character: %q", what, k).OnField("/" + what)
		}
		return nil
	}
	switch x := v.(type) {
	case bson.D:
		for _, e := range x {
			if err := key(e.Key); err != nil {
				return err
			}
			if err := precheck(e.Value, depth+1, maxDepth, what); err != nil {
				return err
			}
		}
	case bson.M:
		return precheck(map[string]any(x), depth, maxDepth, what)
	case map[string]any:
		for k, e := range x {
			if err := key(k); err != nil {
				return err
			}
			if err := precheck(e, depth+1, maxDepth, what); err != nil {
				return err
			}
		}
	case bson.A:
		return precheck([]any(x), depth, maxDepth, what)
	case []any:
		for _, e := range x {
			if err := precheck(e, depth+1, maxDepth, what); err != nil {
				return err
			}
		}
	case []bson.D:
		for _, e := range x {
			if err := precheck(e, depth+1, maxDepth, what); err != nil {
				return err
			}
		}
	case []bson.M:
		for _, e := range x {
			if err := precheck(e, depth+1, maxDepth, what); err != nil {
				return err
			}
		}
	case []map[string]any:
		for _, e := range x {
			if err := precheck(e, depth+1, maxDepth, what); err != nil {
				return err
			}
		}
	}
	return nil
}

// marshal turns v into the BSON document that will be sent; nil is the empty
// document.
func (s *Scope) marshal(what string, v any) (bson.Raw, error) {
	if v == nil {
		return bson.Raw{5, 0, 0, 0, 0}, nil
	}
	if err := precheck(v, 1, s.limits.MaxDepth, what); err != nil {
		return nil, err
	}
	b, err := bson.Marshal(v)
	if err != nil {
		return nil, apierr.Wrap(apierr.CodeBadRequest, err, what+" is not a document").OnField("/" + what)
	}
	if len(b) > s.limits.MaxDocumentBytes {
		return nil, apierr.New(apierr.CodeScopeLimit, "%s is %d bytes, over the limit of %d", what, len(b), s.limits.MaxDocumentBytes).OnField("/" + what)
	}
	raw := bson.Raw(b)
	if err := raw.Validate(); err != nil {
		return nil, apierr.Wrap(apierr.CodeBadRequest, err, what+" is not valid BSON").OnField("/" + what)
	}
	return raw, nil
}

// document checks a filter, projection or sort (stored false) or a document
// to be stored (stored true).
func (s *Scope) document(what string, v any, stored bool) (bson.Raw, error) {
	raw, err := s.marshal(what, v)
	if err != nil {
		return nil, err
	}
	w := walker{maxDepth: s.limits.MaxDepth, stored: stored, path: []string{what}}
	if err := w.doc(raw, 1); err != nil {
		return nil, err
	}
	return raw, nil
}

// filter checks a query filter.
func (s *Scope) filter(what string, v any) (bson.Raw, error) { return s.document(what, v, false) }

// array checks that v is a list of values and returns them; what it holds is
// checked by the caller.
func (s *Scope) array(what string, v any) ([]bson.RawValue, error) {
	if v == nil {
		return nil, apierr.New(apierr.CodeBadRequest, "%s is missing", what).OnField("/" + what)
	}
	if err := precheck(v, 0, s.limits.MaxDepth, what); err != nil {
		return nil, err
	}
	b, err := bson.Marshal(bson.D{{Key: "v", Value: v}})
	if err != nil {
		return nil, apierr.Wrap(apierr.CodeBadRequest, err, what+" is not a list").OnField("/" + what)
	}
	arr, ok := bson.Raw(b).Lookup("v").ArrayOK()
	if !ok {
		return nil, apierr.New(apierr.CodeBadRequest, "%s is not a list", what).OnField("/" + what)
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, apierr.Wrap(apierr.CodeBadRequest, err, what+" is not valid BSON").OnField("/" + what)
	}
	return vals, nil
}

// stored checks a document to be inserted or to replace another and returns
// it with experiment_id set to the own slug. A document may carry
// experiment_id only when it is the own slug.
func (s *Scope) stored(what string, v any) (bson.D, error) {
	raw, err := s.document(what, v, true)
	if err != nil {
		return nil, err
	}
	elems, _ := raw.Elements()
	out := make(bson.D, 0, len(elems)+1)
	out = append(out, bson.E{Key: Field, Value: s.slug})
	for _, e := range elems {
		if e.Key() == Field {
			if got, ok := e.Value().StringValueOK(); !ok || got != s.slug {
				return nil, apierr.New(apierr.CodeScopeForbidden, "%s sets %s to %s: documents may only carry the own slug %q", what, Field, e.Value(), s.slug).OnField("/" + what + "/" + Field)
			}
			continue
		}
		out = append(out, bson.E{Key: e.Key(), Value: e.Value()})
	}
	return out, nil
}

// updateDoc checks an update: a document of update operators, none of which
// touches experiment_id. An upsert's update gets $setOnInsert of
// experiment_id.
func (s *Scope) updateDoc(v any, upsert bool) (bson.D, error) {
	raw, err := s.document("update", v, false)
	if err != nil {
		return nil, err
	}
	elems, _ := raw.Elements()
	if len(elems) == 0 {
		return nil, apierr.New(apierr.CodeBadRequest, "the update is empty").OnField("/update")
	}
	out := make(bson.D, 0, len(elems)+1)
	setOnInsert := false
	for _, e := range elems {
		op := e.Key()
		path := []string{"update", op}
		if !strings.HasPrefix(op, "$") {
			return nil, apierr.New(apierr.CodeBadRequest, "the update has the field %q: an update is a document of update operators such as $set (replace a whole document with ReplaceOne)", op).OnField("/update")
		}
		if !updateOperators[op] {
			return nil, apierr.New(apierr.CodeScopeForbiddenOperator, "update operator %q is not supported here", op).OnField(pointer(path))
		}
		fields, ok := e.Value().DocumentOK()
		if !ok {
			return nil, apierr.New(apierr.CodeBadRequest, "%s is not a document", render(path)).OnField(pointer(path))
		}
		fes, _ := fields.Elements()
		for _, fe := range fes {
			p := append(path, fe.Key())
			if touches(fe.Key()) {
				return nil, apierr.New(apierr.CodeScopeForbidden, "the update may not change %s (%s): the platform sets it", Field, render(p)).OnField(pointer(p))
			}
			if op == "$rename" {
				if to, _ := fe.Value().StringValueOK(); touches(to) {
					return nil, apierr.New(apierr.CodeScopeForbidden, "the update may not rename a field to %s (%s): the platform sets it", Field, render(p)).OnField(pointer(p))
				}
			}
		}
		if op == "$setOnInsert" && upsert {
			setOnInsert = true
			out = append(out, bson.E{Key: op, Value: append(rawD(fields), bson.E{Key: Field, Value: s.slug})})
			continue
		}
		out = append(out, bson.E{Key: op, Value: e.Value()})
	}
	if upsert && !setOnInsert {
		out = append(out, bson.E{Key: "$setOnInsert", Value: bson.D{{Key: Field, Value: s.slug}}})
	}
	return out, nil
}

// touches reports whether the update path p is experiment_id or inside it.
func touches(p string) bool { return p == Field || strings.HasPrefix(p, Field+".") }

// namesField finds a key naming experiment_id anywhere in d, as a field or a
// path through it, and returns where.
func namesField(d bson.Raw, path []string) []string {
	elems, _ := d.Elements()
	for _, e := range elems {
		p := append(path[:len(path):len(path)], e.Key())
		if touches(e.Key()) {
			return p
		}
		if found := namesFieldIn(e.Value(), p); found != nil {
			return found
		}
	}
	return nil
}

func namesFieldIn(v bson.RawValue, path []string) []string {
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		return namesField(v.Document(), path)
	case bson.TypeArray:
		vals, _ := v.Array().Values()
		for i, x := range vals {
			if found := namesFieldIn(x, append(path[:len(path):len(path)], strconv.Itoa(i))); found != nil {
				return found
			}
		}
	}
	return nil
}

// pipeline checks an aggregation pipeline and returns its stages.
func (s *Scope) pipeline(v any) ([]bson.Raw, error) {
	vals, err := s.array("pipeline", v)
	if err != nil {
		return nil, err
	}
	if len(vals) > s.limits.MaxStages {
		return nil, apierr.New(apierr.CodeScopeLimit, "the pipeline has %d stages, more than %d", len(vals), s.limits.MaxStages).OnField("/pipeline")
	}
	size := 0
	stages := make([]bson.Raw, len(vals))
	for i, v := range vals {
		path := []string{"pipeline", strconv.Itoa(i)}
		st, ok := v.DocumentOK()
		if !ok {
			return nil, apierr.New(apierr.CodeBadRequest, "%s is not a stage document", render(path)).OnField(pointer(path))
		}
		size += len(st)
		elems, err := st.Elements()
		if err != nil || len(elems) != 1 {
			return nil, apierr.New(apierr.CodeBadRequest, "%s must have exactly one field, the stage's name", render(path)).OnField(pointer(path))
		}
		name := elems[0].Key()
		if !stageAllowed[name] {
			why := "allowed are " + strings.Join(allowedStages, ", ")
			if reason, ok := forbidden[strings.ToLower(name)]; ok {
				why = reason
			}
			return nil, apierr.New(apierr.CodeScopeForbiddenStage, "stage %q is refused at %s: %s", name, render(path), why).OnField(pointer(path))
		}
		w := walker{maxDepth: s.limits.MaxDepth, path: path}
		if err := w.doc(st, 2); err != nil {
			return nil, err
		}
		stages[i] = st
	}
	if size > s.limits.MaxDocumentBytes {
		return nil, apierr.New(apierr.CodeScopeLimit, "the pipeline is %d bytes, over the limit of %d", size, s.limits.MaxDocumentBytes).OnField("/pipeline")
	}
	return stages, nil
}
