package report

import (
	"cmp"
	_ "embed"
	"html/template"
	"io"
	"strings"

	"cca-testbed/cell"
	"cca-testbed/checks"
	"cca-testbed/matrix"
	"cca-testbed/snapshot"
)

//go:embed report.html.tmpl
var htmlTemplate string

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"mark":    mark,
	"classOf": classOf,
	"conduit": conduit,
}).Parse(htmlTemplate))

// answerRow is one variant's answers to the questions the LKML thread asks,
// read from that variant's cells.
type answerRow struct {
	Variant, Description             string
	DACheck                          cell.DACheck
	ModelHosts                       string // SeriesVariant.ModelHosts
	TSM0, Autoload, Systemd, Report  []answer
	SystemdTrixie, Proposed, Devices []answer
}

type answer struct {
	Role, Value string
	Status      checks.Status
	Reason      string // shown for xfail: why the variant breaks this
}

type diffBlock struct {
	Title   string
	Changes []string
}

type htmlData struct {
	*Report
	Checks  []checks.Check
	Answers []answerRow
	Diffs   []diffBlock
	Snaps   []snapBlock
}

type snapBlock struct{ Cell, Text string }

func (r *Report) html(w io.Writer) error {
	d := htmlData{Report: r, Checks: checks.All}
	byName := map[string]matrix.CellResult{}
	for _, c := range r.Cells {
		byName[c.Name] = c
		if c.Snapshot != nil {
			d.Snaps = append(d.Snaps, snapBlock{c.Name, c.Snapshot.Text()})
		}
	}
	pick := func(c cell.Cell, check string) (answer, bool) {
		cr, ok := byName[c.String()]
		if !ok {
			return answer{}, false
		}
		for _, res := range cr.Results {
			if res.Check == check {
				role := string(c.Role)
				if c.Firmware != "" {
					role += "@" + string(c.Firmware) // the real RMM answered
				}
				return answer{Role: role, Value: res.Measured, Status: res.Status, Reason: res.Reason}, true
			}
		}
		return answer{}, false
	}
	for _, v := range cell.Variants {
		row := answerRow{Variant: string(v.Name), Description: v.Description, DACheck: v.DACheck}
		add := func(dst *[]answer, roles []cell.Role, us cell.Userspace, check string) {
			for _, role := range roles {
				if a, ok := pick(cell.Cell{Variant: v.Name, Role: role, Userspace: us}, check); ok {
					*dst = append(*dst, a)
				}
			}
		}
		hosts := []cell.Role{cell.HostDA, cell.HostNoDA}
		realm := []cell.Role{cell.Realm}
		// Hosts on real firmware follow the model's roles in the host columns.
		real := func(dst *[]answer, check string) {
			for _, f := range cell.Firmwares {
				if a, ok := pick(cell.Cell{Variant: v.Name, Role: cell.Host, Userspace: cell.Forky, Firmware: f.Name}, check); ok {
					*dst = append(*dst, a)
				}
			}
		}
		add(&row.TSM0, hosts, cell.Forky, "tsm0")
		if len(row.TSM0) > 0 { // the model's hosts are in the run
			row.ModelHosts = modelHosts(v.Name)
		}
		real(&row.TSM0, "tsm0")
		add(&row.Devices, cell.Roles, cell.Forky, "devices")
		real(&row.Devices, "devices")
		add(&row.Autoload, cell.Roles, cell.Forky, "autoload")
		real(&row.Autoload, "autoload")
		add(&row.Systemd, []cell.Role{cell.Realm, cell.Plain}, cell.Forky, "cvm-systemd")
		add(&row.SystemdTrixie, realm, cell.Trixie, "cvm-systemd")
		add(&row.Proposed, realm, cell.Forky, "cvm-proposed")
		add(&row.Report, realm, cell.Forky, "tsm-report")
		d.Answers = append(d.Answers, row)
	}
	// Every variant against platform, role by role: what moved, what vanished.
	for _, v := range cell.Variants[1:] {
		for _, role := range cell.Roles {
			base := byName[cell.Cell{Variant: cell.Platform, Role: role, Userspace: cell.Forky}.String()]
			other := byName[cell.Cell{Variant: v.Name, Role: role, Userspace: cell.Forky}.String()]
			if base.Snapshot == nil || other.Snapshot == nil {
				continue
			}
			b := diffBlock{Title: other.Name + " vs " + base.Name}
			for _, ch := range snapshot.Diff(base.Snapshot, other.Snapshot) {
				b.Changes = append(b.Changes, ch.String())
			}
			d.Diffs = append(d.Diffs, b)
		}
	}
	return htmlTmpl.Execute(w, d)
}

// classOf maps a diff line to a CSS class by its leading mark.
func classOf(line string) string {
	return cmp.Or(map[string]string{"+": "add", "-": "del", "~": "chg"}[strings.SplitN(line, " ", 2)[0]], "")
}
