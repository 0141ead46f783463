// Package report renders matrix results: a table for terminals, JSON for
// tools, JUnit XML for CI, Markdown for pull requests and HTML for readers.
// Every format carries every result class (pass, fail, xfail, boot, skip,
// error, measured) separately: a kernel that failed to boot is a finding,
// a harness error is not, and a user's series, with no expectations
// recorded, is measured, not graded.
//
// Tests: go test ./report (golden files in testdata, -update regenerates).
package report

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"cca-testbed/cell"
	"cca-testbed/checks"
	"cca-testbed/internal/term"
	"cca-testbed/matrix"
)

// Formats lists the output formats by flag value.
var Formats = []string{"text", "json", "junit", "markdown", "html"}

// Report is one run's results.
type Report struct {
	Backend string              `json:"backend"`
	Started time.Time           `json:"started"`
	Elapsed time.Duration       `json:"elapsed_ns"`
	Cells   []matrix.CellResult `json:"cells"`
	Summary Summary             `json:"summary"`
	// Series are the run's variants read from patch series
	// (--variant-from, variants/) or prebuilt packages, with their
	// provenance.
	Series []SeriesVariant `json:"series,omitempty"`
}

// SeriesVariant is a variant a user's series supplied.
type SeriesVariant struct {
	Variant     string `json:"variant"`
	Description string `json:"description"` // summary and provenance
	// DACheck is how its host side decides Device Assignment ("" when
	// the series does not say).
	DACheck cell.DACheck `json:"da_check,omitempty"`
	// ModelHosts says what its host-da and host-noda cells measure: no
	// glue, so no answers from the model reach its kernel.
	ModelHosts string `json:"model_hosts,omitempty"`
}

// modelHosts is SeriesVariant.ModelHosts for variant v.
func modelHosts(v cell.Variant) string {
	why := cell.Cell{Variant: v, Role: cell.HostDA}.NoRMIAnswerer()
	if why == "" {
		return ""
	}
	return "host-da and host-noda: " + why + ", which reads them from cca_testbed.smc= on the command line; this kernel's hosts meet an RMM only on real firmware (host@" + string(cell.TFRMM09) + ", host@" + string(cell.TFRMM08) + ")"
}

// Summary counts results by status.
type Summary struct {
	Cells  int                   `json:"cells"`
	Checks int                   `json:"checks"`
	By     map[checks.Status]int `json:"by_status"`
}

// New builds a report and its summary.
func New(backend string, started time.Time, elapsed time.Duration, cells []matrix.CellResult) *Report {
	r := &Report{Backend: backend, Started: started.UTC(), Elapsed: elapsed, Cells: cells,
		Summary: Summary{Cells: len(cells), By: map[checks.Status]int{}}}
	seen := map[cell.Variant]bool{}
	modelHost := map[cell.Variant]bool{} // the run has a host cell nothing answers
	for _, c := range cells {
		if c.Cell.NoRMIAnswerer() != "" {
			modelHost[c.Cell.Variant] = true
		}
	}
	for _, c := range cells {
		for _, res := range c.Results {
			r.Summary.Checks++
			r.Summary.By[res.Status]++
		}
		if v := c.Cell.Variant; (cell.FromSeries(v) || cell.FromRecipe(v) || cell.Prebuilt(v)) && !seen[v] {
			seen[v] = true
			for _, info := range cell.Variants {
				if info.Name == v {
					sv := SeriesVariant{Variant: string(v), Description: info.Description, DACheck: info.DACheck}
					if modelHost[v] {
						sv.ModelHosts = modelHosts(v)
					}
					r.Series = append(r.Series, sv)
				}
			}
		}
	}
	return r
}

// OK reports whether every check passed, failed as expected or was
// measured with nothing to grade it against.
func (r *Report) OK() bool {
	return r.Summary.By[checks.Pass]+r.Summary.By[checks.XFail]+r.Summary.By[checks.Measured] == r.Summary.Checks
}

func (s Summary) String() string {
	out := fmt.Sprintf("%d cells, %d checks: %d pass, %d xfail, %d fail, %d boot, %d skip, %d error",
		s.Cells, s.Checks, s.By[checks.Pass], s.By[checks.XFail], s.By[checks.Fail], s.By[checks.Boot], s.By[checks.Skip], s.By[checks.Infra])
	if n := s.By[checks.Measured]; n > 0 {
		out += fmt.Sprintf(", %d measured (not graded)", n) // only runs with a user's series have them
	}
	return out
}

// Write renders r in format.
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case "text":
		return r.text(w)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "junit":
		return r.junit(w)
	case "markdown":
		return r.markdown(w)
	case "html":
		return r.html(w)
	}
	return fmt.Errorf("unknown format %q (known: %s)", format, strings.Join(Formats, ", "))
}

func (r *Report) text(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "CELL\t%s\tCONDUIT\n", strings.Join(checks.Names(), "\t"))
	for _, c := range r.Cells {
		row := []string{term.Escape(c.Name)}
		for _, res := range c.Results {
			row = append(row, term.Escape(string(res.Status)))
		}
		row = append(row, conduit(c))
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// The text form goes to terminals: what came from a guest or a file
	// is escaped (term.Escape), one line per note.
	line := func(format string, a ...any) { fmt.Fprintln(w, term.Escape(fmt.Sprintf(format, a...))) }
	for _, sv := range r.Series {
		what := "a patch series"
		if cell.Prebuilt(cell.Variant(sv.Variant)) {
			what = "a prebuilt package"
		}
		line("variant %s is %s (DA check: %s): %s", sv.Variant, what, sv.DACheck, sv.Description)
		if sv.ModelHosts != "" {
			line("  %s", sv.ModelHosts)
		}
	}
	for _, c := range r.Cells {
		if c.Err != "" {
			line("%s: %s: %s", c.Name, classWord(c.Class), c.Err)
			continue
		}
		for _, res := range c.Results {
			switch res.Status {
			case checks.Fail:
				line("%s %s: FAIL measured %s, expected %s%s", c.Name, res.Check, res.Measured, orNone(res.Expected), suffix(res.Reason))
			case checks.XFail:
				line("%s %s: xfail %s (%s)", c.Name, res.Check, res.Measured, res.Reason)
			case checks.Skip:
				line("%s %s: skip (%s)", c.Name, res.Check, res.Reason)
			case checks.Measured:
				line("%s %s: measured %s (not graded)", c.Name, res.Check, res.Measured)
			}
		}
	}
	_, err := fmt.Fprintf(w, "%s backend, %s in %s\n", r.Backend, r.Summary, r.Elapsed.Round(time.Millisecond))
	return err
}

// unmeasured is the status of every check of a cell that failed on side c.
func unmeasured(c matrix.Class) checks.Status {
	if c == matrix.ClassBoot {
		return checks.Boot
	}
	return checks.Infra
}

// classWord is how text names the side that failed an unmeasured cell.
func classWord(c matrix.Class) string {
	if c == matrix.ClassBoot {
		return "kernel failed to boot"
	}
	return "error"
}

// conduit says who answered the cell's firmware calls: the glue's
// emulated answers, the realm firmware, real SMCs or nobody ("-" when the
// cell has no snapshot). A model host cell of a kernel without the glue
// says why nobody did, whatever the backend recorded: the emulated one
// names the profile it meant, the qemu one only "none".
func conduit(c matrix.CellResult) string {
	if c.Snapshot == nil || c.Snapshot.Meta.Conduit == "" {
		return "-"
	}
	rec := c.Snapshot.Meta.Conduit
	// Firmware below the kernel ("smc", "realmfw:...") answers any kernel.
	if why := c.Cell.NoRMIAnswerer(); why != "" && (rec == "none" || strings.HasPrefix(rec, "emulated-rmi")) {
		return why
	}
	// A recipe's host booted without the firmware's host mode
	// (--host-conduit none) had nothing below it either.
	if c.Cell.OnHostFirmware() && rec == "none" {
		return "no RMI answerer (recipe kernel booted with --host-conduit none)"
	}
	return rec
}

func orNone(s string) string {
	if s == "" {
		return "(nothing recorded)"
	}
	return s
}

func suffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

func (r *Report) markdown(w io.Writer) error {
	fmt.Fprintf(w, "# cca-testbed matrix (%s backend)\n\n%s.\n\n", r.Backend, r.Summary)
	fmt.Fprintf(w, "| cell | %s | conduit |\n|---|%s---|\n", strings.Join(checks.Names(), " | "), strings.Repeat("---|", len(checks.All)))
	for _, c := range r.Cells {
		row := []string{"`" + c.Name + "`"}
		for _, res := range c.Results {
			row = append(row, mark(res.Status)+" "+mdEscape(res.Measured))
		}
		row = append(row, mdEscape(conduit(c)))
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	for i, sv := range r.Series {
		if i == 0 {
			fmt.Fprintf(w, "\nVariants from patch series or prebuilt packages:\n\n")
		}
		fmt.Fprintf(w, "- `%s` (DA check: %s): %s\n", sv.Variant, sv.DACheck, mdEscape(sv.Description))
		if sv.ModelHosts != "" {
			fmt.Fprintf(w, "  %s\n", mdEscape(sv.ModelHosts))
		}
	}
	fmt.Fprintf(w, "\nKey: ✅ as expected, ⚠️ expected breakage (xfail), ❌ differs from expectation, 🔥 kernel failed to boot (a finding), ⏭ skipped, 💥 infrastructure error, 📏 measured, not graded (a variant from a patch series has no recorded expectations).\n")
	var notes []string
	for _, c := range r.Cells {
		if c.Err != "" {
			notes = append(notes, fmt.Sprintf("- `%s`: %s %s", c.Name, mark(unmeasured(c.Class)), mdEscape(c.Err)))
			continue
		}
		for _, res := range c.Results {
			if res.Status != checks.Pass && res.Status != checks.Measured { // the table shows a measured value
				notes = append(notes, fmt.Sprintf("- `%s` %s: %s %s%s", c.Name, res.Check, mark(res.Status), mdEscape(res.Measured), suffix(mdEscape(res.Reason))))
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\n## Notes\n\n%s\n", strings.Join(notes, "\n"))
	}
	return nil
}

func mdEscape(s string) string { return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s) }

func mark(s checks.Status) string {
	switch s {
	case checks.Pass:
		return "✅"
	case checks.XFail:
		return "⚠️"
	case checks.Fail:
		return "❌"
	case checks.Skip:
		return "⏭"
	case checks.Boot:
		return "🔥"
	case checks.Measured:
		return "📏"
	}
	return "💥"
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Name    string       `xml:"name,attr"`
	Tests   int          `xml:"tests,attr"`
	Fails   int          `xml:"failures,attr"`
	Errors  int          `xml:"errors,attr"`
	Skipped int          `xml:"skipped,attr"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name    string      `xml:"name,attr"`
	Tests   int         `xml:"tests,attr"`
	Fails   int         `xml:"failures,attr"`
	Errors  int         `xml:"errors,attr"`
	Skipped int         `xml:"skipped,attr"`
	Time    string      `xml:"time,attr"`
	Cases   []junitCase `xml:"testcase"`
	// SystemOut says why nothing answered a host cell's RMI calls.
	SystemOut string `xml:"system-out,omitempty"`
}

type junitCase struct {
	Name      string    `xml:"name,attr"`
	Classname string    `xml:"classname,attr"`
	Failure   *junitMsg `xml:"failure,omitempty"`
	Error     *junitMsg `xml:"error,omitempty"`
	Skipped   *junitMsg `xml:"skipped,omitempty"`
	SystemOut string    `xml:"system-out,omitempty"`
}

type junitMsg struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// junit maps xfail to a passing case whose output says "xfail: reason":
// JUnit has no expected-failure class, and counting it as skipped would
// hide that it was measured. A measured (ungraded) check is a passing case
// whose output says "measured, not graded". A kernel that failed to boot is a failure of
// type "boot" (a finding); a harness error is an error of type "infra".
func (r *Report) junit(w io.Writer) error {
	out := junitSuites{Name: "cca-testbed " + r.Backend}
	for _, c := range r.Cells {
		s := junitSuite{Name: c.Name, Time: fmt.Sprintf("%.3f", c.Duration.Seconds())}
		if why := c.Cell.NoRMIAnswerer(); why != "" {
			s.SystemOut = "conduit: " + why
		}
		for _, res := range c.Results {
			tc := junitCase{Name: res.Check, Classname: "cca-testbed." + c.Name}
			evidence := strings.Join(res.Evidence, "\n")
			msg := fmt.Sprintf("measured %s, expected %s%s", res.Measured, orNone(res.Expected), suffix(res.Reason))
			switch res.Status {
			case checks.Fail:
				tc.Failure = &junitMsg{Message: msg, Body: evidence}
				s.Fails++
			case checks.Boot:
				tc.Failure = &junitMsg{Message: res.Reason, Type: string(matrix.ClassBoot)}
				s.Fails++
			case checks.Infra:
				tc.Error = &junitMsg{Message: res.Reason, Type: string(matrix.ClassInfra)}
				s.Errors++
			case checks.Skip:
				tc.Skipped = &junitMsg{Message: res.Reason}
				s.Skipped++
			case checks.XFail:
				tc.SystemOut = "xfail: " + msg + "\n" + evidence
			case checks.Measured:
				tc.SystemOut = "measured " + res.Measured + ", not graded: " + res.Reason + "\n" + evidence
			default:
				tc.SystemOut = "measured " + res.Measured + "\n" + evidence
			}
			s.Cases = append(s.Cases, tc)
			s.Tests++
		}
		out.Tests += s.Tests
		out.Fails += s.Fails
		out.Errors += s.Errors
		out.Skipped += s.Skipped
		out.Suites = append(out.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
