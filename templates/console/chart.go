package console

import (
	"strconv"
	"unicode/utf8"
)

// ChartSeries is one attester's decision counts.
type ChartSeries struct {
	Label              string
	Accepted, Rejected int64
}

// BarChart is a horizontal grouped bar chart laid out in SVG user units: for every series one
// green bar (accepted) over one red bar (rejected), a value axis with round ticks, and a legend.
// The geometry is computed here so the template only places shapes.
type BarChart struct {
	Title         string
	Width, Height int
	Empty         bool // no decisions at all: the template shows a sentence instead of bars
	PlotX, PlotY  int  // top-left corner of the plot area
	PlotW, PlotH  int
	Rows          []ChartRow
	Ticks         []ChartTick
}

// ChartRow is one series' label and its two bars.
type ChartRow struct {
	Label              string
	FullLabel          string // the untruncated label, for the tooltip
	LabelY             int
	Accepted, Rejected ChartBar
}

// ChartBar is one bar and where its value is written.
type ChartBar struct {
	X, Y, W, H     int
	Value          int64
	LabelX, LabelY int
}

// ChartTick is one value-axis tick.
type ChartTick struct {
	X     int
	Label string
}

// Chart geometry in SVG user units.
const (
	chartWidth      = 900
	chartLabelWidth = 170
	chartRightPad   = 56
	chartTopPad     = 34 // legend
	chartBottomPad  = 28 // axis labels
	chartRowHeight  = 44
	chartBarHeight  = 15
	chartBarGap     = 3
	chartMaxLabel   = 24 // runes
)

// NewBarChart lays out series (in the given order) as a BarChart titled title.
func NewBarChart(title string, series []ChartSeries) BarChart {
	c := BarChart{Title: title, Width: chartWidth, PlotX: chartLabelWidth, PlotY: chartTopPad,
		PlotW: chartWidth - chartLabelWidth - chartRightPad}
	rows := len(series)
	if rows == 0 {
		rows = 1
	}
	c.PlotH = rows * chartRowHeight
	c.Height = chartTopPad + c.PlotH + chartBottomPad

	var maxValue int64
	for _, s := range series {
		maxValue = max(maxValue, s.Accepted, s.Rejected)
	}
	c.Empty = maxValue == 0
	top, step := niceScale(maxValue)
	for v := int64(0); v <= top; v += step {
		c.Ticks = append(c.Ticks, ChartTick{X: c.PlotX + scale(v, top, c.PlotW), Label: strconv.FormatInt(v, 10)})
	}
	for i, s := range series {
		y := c.PlotY + i*chartRowHeight + (chartRowHeight-2*chartBarHeight-chartBarGap)/2
		row := ChartRow{Label: truncate(s.Label, chartMaxLabel), FullLabel: s.Label, LabelY: y + chartBarHeight + chartBarGap/2 + 4}
		row.Accepted = bar(c.PlotX, y, s.Accepted, top, c.PlotW)
		row.Rejected = bar(c.PlotX, y+chartBarHeight+chartBarGap, s.Rejected, top, c.PlotW)
		c.Rows = append(c.Rows, row)
	}
	return c
}

func bar(x, y int, v, top int64, width int) ChartBar {
	w := scale(v, top, width)
	if v > 0 && w < 2 {
		w = 2 // a non-zero count stays visible
	}
	return ChartBar{X: x, Y: y, W: w, H: chartBarHeight, Value: v, LabelX: x + w + 6, LabelY: y + chartBarHeight - 3}
}

func scale(v, top int64, width int) int {
	if top <= 0 || v <= 0 {
		return 0
	}
	return int(v * int64(width) / top)
}

// niceScale returns an axis maximum >= v and a tick step, both from the 1-2-5 series, giving at
// most six ticks.
func niceScale(v int64) (top, step int64) {
	if v <= 0 {
		return 1, 1
	}
	for mag := int64(1); ; mag *= 10 {
		for _, m := range []int64{1, 2, 5} {
			step = m * mag
			if (v+step-1)/step <= 5 {
				return (v + step - 1) / step * step, step
			}
		}
		if mag > (1<<62)/100 {
			return v, v
		}
	}
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
