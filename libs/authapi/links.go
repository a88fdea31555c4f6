package authapi

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gnome-platform/gnome/libs/contract"
)

// Study links (docs/experiments.md, "Study links"): an experiment's owner
// makes links that admit participants without accounts; opening one on
// the experiment's origin begins a run and a participant session.
var (
	EndpointLinksCreate = contract.Endpoint[LinksCreate, Links]{Service: Service, Name: "links.create"}
	EndpointLinksList   = contract.Endpoint[LinksList, Links]{Service: Service, Name: "links.list"}
	EndpointLinksRevoke = contract.Endpoint[LinkRevoke, Link]{Service: Service, Name: "links.revoke"}
	EndpointLinksRuns   = contract.Endpoint[RunsList, Runs]{Service: Service, Name: "links.runs"}
	EndpointLinksOpen   = contract.Endpoint[LinkOpen, LinkSession]{Service: Service, Name: "links.open"}
)

// Kinds of study links.
const (
	LinkSingle   = "single"
	LinkMulti    = "multi"
	LinkPersonal = "personal"
)

// Limits of study links.
const (
	// MaxLinksPerRequest bounds one creation (count).
	MaxLinksPerRequest = 1000
	// MaxLinksPerExperiment bounds an experiment's links.
	MaxLinksPerExperiment = 100_000
	// PageSize is how many links or runs one reply of links.list or
	// links.runs holds, far below what the bus carries at their largest.
	PageSize    = 500
	MaxLabelLen = 100
	MaxCodeLen  = 100
	MaxURLLen   = 2048
	// MaxParams bounds the URL parameters recorded of one opening; longer
	// names or values are refused. They travel in the participant's
	// session cookie, which these bounds keep under browsers' 4 KB.
	MaxParams        = 8
	MaxParamNameLen  = 32
	MaxParamValueLen = 128
)

// RecruiterParams are the URL parameters that recruitment services add to
// a study link, which completion URL templates may name.
var RecruiterParams = []string{"PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "assignmentId", "hitId"}

// MTurkPreview is the assignmentId Mechanical Turk gives a worker who
// previews a HIT without accepting it: such an opening starts no run.
const MTurkPreview = "ASSIGNMENT_ID_NOT_AVAILABLE"

// Link is a study link as its owner sees it.
type Link struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Kind string `json:"kind"`
	// URL is where participants open it (on the experiment's origin);
	// the edge fills it in.
	URL            string     `json:"url,omitempty"`
	Label          string     `json:"label,omitempty"`
	CompletionURL  string     `json:"completion_url,omitempty"`
	CompletionCode string     `json:"completion_code,omitempty"`
	Revoked        bool       `json:"revoked"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
	CreatedBy      string     `json:"created_by"`
	CreatedAt      time.Time  `json:"created_at"`
	// Opened counts runs begun through it; Started those that reached the
	// actor; Finished those the actor finished.
	Opened   int64 `json:"opened"`
	Started  int64 `json:"started"`
	Finished int64 `json:"finished"`
}

// Links are an experiment's study links. Next is, in a reply of
// links.list, the cursor of the next page; "" after the last.
type Links struct {
	Links []Link `json:"links"`
	Next  string `json:"next,omitempty"`
}

// LinksCreate makes count links of one kind for slug.
type LinksCreate struct {
	Actor Actor  `json:"actor"`
	Slug  string `json:"slug"`
	Kind  string `json:"kind"`
	// Count is how many links to make (1 when 0); personal links take
	// one label each instead.
	Count int `json:"count,omitempty"`
	// Labels name the participants of personal links, one link each.
	Labels         []string `json:"labels,omitempty"`
	CompletionURL  string   `json:"completion_url,omitempty"`
	CompletionCode string   `json:"completion_code,omitempty"`
}

// LinksList asks for a page of slug's links: the first, or the one after
// the cursor After of the previous reply.
type LinksList struct {
	Actor Actor  `json:"actor"`
	Slug  string `json:"slug"`
	After string `json:"after,omitempty"`
}

// LinkRevoke revokes one link: it opens no more runs.
type LinkRevoke struct {
	Actor Actor  `json:"actor"`
	Slug  string `json:"slug"`
	ID    string `json:"id"`
}

// RunsList asks for a page of slug's runs, of one link when Link is not
// "": the first, or the one after the cursor After of the previous reply.
type RunsList struct {
	Actor Actor  `json:"actor"`
	Slug  string `json:"slug"`
	Link  string `json:"link,omitempty"`
	After string `json:"after,omitempty"`
}

// Run is one participant's run through a link.
type Run struct {
	ID          string            `json:"id"`
	Link        string            `json:"link"`
	Label       string            `json:"label,omitempty"`
	Participant string            `json:"participant"`
	Params      map[string]string `json:"params,omitempty"`
	OpenedAt    time.Time         `json:"opened_at"`
	StartedAt   *time.Time        `json:"started_at,omitempty"`
	FinishedAt  *time.Time        `json:"finished_at,omitempty"`
}

// Runs are runs of an experiment's links; Next is the cursor of the next
// page, "" after the last.
type Runs struct {
	Runs []Run  `json:"runs"`
	Next string `json:"next,omitempty"`
}

// LinkOpen opens slug's link ID for a new participant, with the URL
// parameters of the opening (already checked by CheckParams).
type LinkOpen struct {
	Slug   string            `json:"slug"`
	ID     string            `json:"id"`
	Params map[string]string `json:"params,omitempty"`
}

// LinkSession is an opened link: the participant's session token (an
// experiment token of kind participant) and their run.
type LinkSession struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Run       Run       `json:"run"`
	// Resumed is true when a personal link was opened again.
	Resumed bool `json:"resumed"`
}

// CreateLinks makes study links.
func (c Client) CreateLinks(ctx context.Context, r LinksCreate) (Links, error) {
	return EndpointLinksCreate.Call(ctx, c.T, r)
}

// ListLinks lists an experiment's study links.
func (c Client) ListLinks(ctx context.Context, r LinksList) (Links, error) {
	return EndpointLinksList.Call(ctx, c.T, r)
}

// RevokeLink revokes a study link.
func (c Client) RevokeLink(ctx context.Context, r LinkRevoke) (Link, error) {
	return EndpointLinksRevoke.Call(ctx, c.T, r)
}

// Runs lists the runs of an experiment's study links.
func (c Client) Runs(ctx context.Context, r RunsList) (Runs, error) {
	return EndpointLinksRuns.Call(ctx, c.T, r)
}

// OpenLink opens a study link for a new participant.
func (c Client) OpenLink(ctx context.Context, r LinkOpen) (LinkSession, error) {
	return EndpointLinksOpen.Call(ctx, c.T, r)
}

var paramName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// CheckParams checks the URL parameters of a study link's opening and
// returns those recorded: each name once (its first value), at most
// MaxParams, names of letters, digits, '_', '.' and '-', values of
// printable UTF-8. The error says what is wrong, for the participant's page.
func CheckParams(q url.Values) (map[string]string, error) {
	if len(q) == 0 {
		return nil, nil
	}
	if len(q) > MaxParams {
		return nil, fmt.Errorf("the address has %d parameters; a study link takes at most %d", len(q), MaxParams)
	}
	out := make(map[string]string, len(q))
	for name, values := range q {
		if !paramName.MatchString(name) {
			return nil, fmt.Errorf("the address has a parameter named %q; names are 1 to %d letters, digits, '_', '.' or '-'", clip(name), MaxParamNameLen)
		}
		v := values[0]
		if len(v) > MaxParamValueLen || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, fmt.Errorf("the address's parameter %s is not up to %d bytes of printable text", name, MaxParamValueLen)
		}
		out[name] = v
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

var placeholder = regexp.MustCompile(`\{([^{}]*)\}`)

// completionFields are the placeholders of a completion URL template
// besides the recruiter parameters.
var completionFields = []string{"code", "participant", "run"}

// CheckCompletionURL checks a completion URL template: an absolute http or
// https URL of at most MaxURLLen bytes whose placeholders are {code},
// {participant}, {run} or a recruiter parameter ({PROLIFIC_PID}, ...).
func CheckCompletionURL(tmpl string) error {
	if len(tmpl) > MaxURLLen {
		return fmt.Errorf("the completion URL is longer than %d bytes", MaxURLLen)
	}
	for _, m := range placeholder.FindAllStringSubmatch(tmpl, -1) {
		if !known(m[1]) {
			return fmt.Errorf("the completion URL names {%s}; it may name {code}, {participant}, {run}, {%s}", clip(m[1]), strings.Join(RecruiterParams, "}, {"))
		}
	}
	u, err := url.Parse(placeholder.ReplaceAllString(tmpl, "x"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("the completion URL is not an absolute http or https address")
	}
	return nil
}

func known(name string) bool {
	for _, k := range completionFields {
		if k == name {
			return true
		}
	}
	for _, k := range RecruiterParams {
		if k == name {
			return true
		}
	}
	return false
}

// CompletionURL fills a completion URL template for a finished run: {code}
// with the link's completion code, {participant} and {run} with the run's,
// a recruiter parameter with the value the opening recorded ("" when
// none). Every value is escaped as a query component, so no value can
// change the address's structure.
func CompletionURL(tmpl, code, participant, run string, params map[string]string) string {
	if tmpl == "" {
		return ""
	}
	return placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[1 : len(m)-1]
		switch name {
		case "code":
			return url.QueryEscape(code)
		case "participant":
			return url.QueryEscape(participant)
		case "run":
			return url.QueryEscape(run)
		}
		return url.QueryEscape(params[name])
	})
}
