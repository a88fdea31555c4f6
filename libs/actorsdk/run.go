package actorsdk

import "time"

// Finished is a study-link run marked finished (FinishRun).
type Finished struct {
	// CompletionURL is where to send the participant now: the link's
	// completion URL template filled for this run ({code}, {participant},
	// {run}, recruiter parameters); "" when the link has none.
	CompletionURL string `json:"completion_url"`
	// FinishedAt is when the run finished; Already is true when it had
	// finished before this call (the first finish's time is kept).
	FinishedAt time.Time `json:"finished_at"`
	Already    bool      `json:"already"`
}

// FinishRun marks the study-link run of the request's caller finished and
// returns where to send them. A caller who came through no link is a
// *HostError with CodeBadRequest; finishing twice is not an error.
//
//	done, err := actorsdk.FinishRun(req)
//	if err != nil { return actorsdk.Fail(err) }
//	return actorsdk.Redirect(done.CompletionURL)
func FinishRun(req *Request) (Finished, error) {
	if req.Caller.Link == nil {
		return Finished{}, &HostError{Op: "run.finish", Code: CodeBadRequest, Message: "the caller did not come through a study link"}
	}
	var res Finished
	err := Call("run.finish", struct {
		Run string `json:"run"`
	}{req.Caller.Link.Run}, &res)
	return res, err
}
