/*
 * trace_svg.c - procpool-trace: turn a procpool trace file (Chrome trace
 * event JSON, array format; docs/tracing.md) into one self-contained SVG.
 *
 * DESIGN
 *
 * The program is two files: trace_read.c reads the trace into the model of
 * trace_model.h and sorts it; this file draws the model as SVG and holds
 * main. What follows describes the whole program.
 *
 * Input. The file is read line by line (getline) and every event line is
 * parsed on its own by jansson (json_loadb), after its framing is taken off:
 * the opening "[", a closing "]", a trailing ",". So a trace cut short after
 * a complete line reads as it is, and memory holds the model, never the JSON
 * text. A line holding several events (a compact "[{..},{..}]" file) is
 * parsed as one array. A line that is not JSON is skipped with a warning
 * (a last line cut in the middle is expected); a file with nothing but such
 * lines, or one that does not start with "[", is refused (exit 1, nothing
 * written). Unknown phases, names and args are ignored; missing args take
 * defaults; events may come in any ts order (everything is sorted before
 * drawing).
 *
 * Model. Pools (pid) and lanes (pid, tid) are found through open-addressing
 * hash maps; a lane holds its spans (ts, dur, interned name, outcome) and
 * its instant marks, a pool its `queue` counter samples and its `terminate`
 * marks. Span names are interned, so a million tasks of a few functions
 * cost a few strings. About 40 bytes per span: a million spans take some
 * 40 MB. jansson parses about a million event lines in 4 s of CPU.
 *
 * Output. A fixed-width picture (1200 px, -w): title and totals, a time axis
 * in us, ms or s with 1-2-5 ticks, one header row per pool (process_name)
 * and one row per lane (thread_name; sorted by thread_sort_index, then tid),
 * spans coloured by outcome, marks for death, respawn and timeout, a dashed
 * line for terminate (across its pool; across all with "s":"g"), then the
 * queue counters as step curves per pool, then a legend. Up to DETAIL_MAX
 * spans each span is a rect with a <title> tooltip; above that, spans
 * narrower than a pixel are merged, per lane and pixel column, into busy
 * bars coloured by their worst outcome (touching bars of one colour into
 * one rect), and wider spans are drawn without tooltips: a lane then costs
 * at most about one element per pixel column, so the size is bounded by
 * lanes x width, not by the event count. Instant marks keep one per kind
 * and pixel, with tooltips up to MARK_TIPS_MAX.
 * Counters likewise keep one point per pixel column (the column's maximum).
 * Colours come from a <style> block; text uses the generic sans-serif font:
 * no script, no external reference.
 *
 * Limits. A ts or dur of 1e15 us (about 30 years) or more is taken for
 * garbage and its event ignored; thousands of lanes make a tall picture
 * (rows shrink to 3 px and lose their labels, but every lane is drawn);
 * long names are cut to fit, by code point. Only the `queue` counter is
 * drawn.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace_model.h"

#ifndef PROCPOOL_TRACE_VERSION
#define PROCPOOL_TRACE_VERSION "unknown"
#endif

#define DETAIL_MAX 20000 /* spans drawn one by one, with tooltips */
#define MARK_TIPS_MAX 20000

/* names of outcomes and marks, indexed by enum outcome and enum mark_kind */
static const char *const oc_class[OC_N] = {"ok", "other", "cancelled", "etask", "tmo", "eworker"};
static const char *const oc_task_name[OC_N] = {"ok",       "no outcome",      "cancelled",
                                               "PP_ETASK", "PP_ETASKTIMEOUT", "PP_EWORKER"};
static const char *const oc_job_name[OC_N] = {"ok",     "no outcome", "cancelled",
                                              "failed", "timeout",    "killed"};

static const char *const mk_class[MK_N] = {"death", "respawn", "timeout", "terminate"};

/* ------------------------------------------------------------------ */
/* writing                                                             */
/* ------------------------------------------------------------------ */

/* s as XML text, cut after max code points (with an ellipsis); characters
 * XML 1.0 does not allow become '?' */
static void put_esc(FILE *o, const char *s, size_t max) {
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xc0) != 0x80 && chars++ == max) {
            fputs("\xe2\x80\xa6", o);
            return;
        }
        switch (*p) {
        case '<': fputs("&lt;", o); break;
        case '>': fputs("&gt;", o); break;
        case '&': fputs("&amp;", o); break;
        case '"': fputs("&quot;", o); break;
        case '\'': fputs("&apos;", o); break;
        case '\n': fputs("&#10;", o); break;
        case '\t': fputc(' ', o); break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                fputc('?', o);
            } else if (p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)) {
                fputc('?', o); /* U+FFFE, U+FFFF */
                p += 2;
            } else {
                fputc(*p, o);
            }
        }
    }
}

static void fmt_time(char *buf, size_t size, double us) {
    double a = fabs(us);
    if (a < 1000)
        snprintf(buf, size, "%.3f \xc2\xb5s", us);
    else if (a < 1e6)
        snprintf(buf, size, "%.3f ms", us / 1e3);
    else
        snprintf(buf, size, "%.3f s", us / 1e6);
}

struct layout {
    double x0, pw;   /* the plot's left edge and width */
    double t0, span; /* the time it shows */
    double rowh, headh;
    int width;
};

static double tx(const struct layout *L, double t) { return L->x0 + (t - L->t0) / L->span * L->pw; }

static void span_tip(FILE *o, const struct model *m, const struct lane *l, const struct span *s) {
    char d[48], t[48];
    fmt_time(d, sizeof d, s->dur);
    fmt_time(t, sizeof t, s->ts);
    fputs("<title>", o);
    put_esc(o, m->names.str[s->name], 300);
    fprintf(o, "&#10;%s, %s", d, (s->flags & SF_JOB ? oc_job_name : oc_task_name)[s->oc]);
    if (s->flags & SF_SIGNAL)
        fprintf(o, " (signal %d)", (int)s->code);
    else if ((s->flags & SF_EXIT) && s->code)
        fprintf(o, " (exit %d)", (int)s->code);
    fprintf(o, "&#10;at %s in ", t);
    if (l->name)
        put_esc(o, l->name, 60);
    else
        fprintf(o, "tid %lld", (long long)l->tid);
    fputs("</title>", o);
}

/* busy bars: spans narrower than a pixel, one column bar per pixel column
 * (the worst outcome of the spans starting in it, widened to whole pixels),
 * and runs of touching column bars of one colour drawn as one rect */
struct busy {
    bool col_open, run_open;
    long col;
    double cx0, cx1, rx0, rx1;
    uint8_t cworst, rworst;
};

static void busy_flush_run(FILE *o, struct busy *b, double y, double h) {
    if (b->run_open)
        fprintf(o,
                "<rect class=\"busy %s\" x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\"/>\n",
                oc_class[b->rworst], b->rx0, y, b->rx1 - b->rx0 < 1.0 ? 1.0 : b->rx1 - b->rx0, h);
    b->run_open = false;
}

static void busy_close_col(FILE *o, struct busy *b, double y, double h) {
    if (!b->col_open)
        return;
    b->col_open = false;
    b->cx1 = ceil(b->cx1);
    if (b->cx1 < b->cx0 + 1)
        b->cx1 = b->cx0 + 1;
    if (b->run_open && b->rworst == b->cworst && b->cx0 <= b->rx1 + 1.0) {
        if (b->cx1 > b->rx1)
            b->rx1 = b->cx1;
        return;
    }
    busy_flush_run(o, b, y, h);
    b->run_open = true;
    b->rx0 = b->cx0;
    b->rx1 = b->cx1;
    b->rworst = b->cworst;
}

static void draw_lane_spans(FILE *o, const struct model *m, const struct layout *L,
                            const struct lane *l, double y, double h, bool detail) {
    struct busy b = {0};
    for (size_t k = 0; k < l->nspans; k++) {
        const struct span *s = &l->spans[k];
        double x0 = tx(L, s->ts), x1 = tx(L, s->ts + s->dur);
        if (detail || x1 - x0 >= 1.0) {
            busy_close_col(o, &b, y, h);
            busy_flush_run(o, &b, y, h);
            double w = x1 - x0 < 1.0 ? 1.0 : x1 - x0;
            fprintf(o,
                    "<rect class=\"span %s\" x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\"",
                    oc_class[s->oc], x0, y, w, h);
            if (detail) {
                fputc('>', o);
                span_tip(o, m, l, s);
                fputs("</rect>\n", o);
            } else {
                fputs("/>\n", o);
            }
            continue;
        }
        long col = (long)floor(x0);
        if (b.col_open && col == b.col) {
            if (x1 > b.cx1)
                b.cx1 = x1;
            if (s->oc > b.cworst)
                b.cworst = s->oc;
            continue;
        }
        busy_close_col(o, &b, y, h);
        b.col_open = true;
        b.col = col;
        b.cx0 = (double)col; /* whole pixels: touching bars leave no seam */
        b.cx1 = x1;
        b.cworst = s->oc;
    }
    busy_close_col(o, &b, y, h);
    busy_flush_run(o, &b, y, h);
}

static void mark_tip(FILE *o, const struct mark *mk) {
    char t[48];
    fmt_time(t, sizeof t, mk->ts);
    fprintf(o, "<title>%s at %s", mk_class[mk->kind], t);
    if (mk->wpid >= 0)
        fprintf(o, ", worker pid %lld", (long long)mk->wpid);
    if (mk->flags & SF_SIGNAL)
        fprintf(o, ", signal %d", (int)mk->code);
    else if (mk->flags & SF_EXIT)
        fprintf(o, ", exit %d", (int)mk->code);
    fputs("</title>", o);
}

static void draw_lane_marks(FILE *o, const struct layout *L, const struct lane *l, double y,
                            double h, bool tips) {
    double last_x[MK_N];
    for (int k = 0; k < MK_N; k++)
        last_x[k] = -1e9;
    for (size_t k = 0; k < l->nmarks; k++) {
        const struct mark *mk = &l->marks[k];
        double x = tx(L, mk->ts);
        if (!tips && x - last_x[mk->kind] < 1.0)
            continue; /* one mark of a kind per pixel */
        last_x[mk->kind] = x;
        fprintf(o, "<path class=\"mark %s\" d=\"M%.1f %.1fv%.1f", mk_class[mk->kind], x, y, h);
        double a = h < 10 ? h / 2 : 5; /* the size of the head */
        switch (mk->kind) {
        case MK_DEATH: /* a triangle pointing down from the top */
            fprintf(o, "M%.1f %.1fh%.1fl%.1f %.1fz", x - a * 0.7, y, a * 1.4, -a * 0.7, a);
            break;
        case MK_RESPAWN: /* a triangle pointing up from the bottom */
            fprintf(o, "M%.1f %.1fh%.1fl%.1f %.1fz", x - a * 0.7, y + h, a * 1.4, -a * 0.7, -a);
            break;
        default: /* a diamond in the middle */
            fprintf(o, "M%.1f %.1fl%.1f %.1fl%.1f %.1fl%.1f %.1fz", x, y + h / 2 - a * 0.8, a * 0.6,
                    a * 0.8, -a * 0.6, a * 0.8, -a * 0.6, -a * 0.8);
            break;
        }
        fputc('"', o);
        if (tips) {
            fputc('>', o);
            mark_tip(o, mk);
            fputs("</path>\n", o);
        } else {
            fputs("/>\n", o);
        }
    }
}

/* one step curve of a pool's counter: at most one point per pixel column,
 * the column's maximum; a missing value keeps the one before */
static void draw_series(FILE *o, const struct layout *L, const struct pool *p, bool inflight,
                        double ybase, double h, double vmax, double tend) {
    double prev = 0, colmax = 0;
    long col = LONG_MIN;
    bool started = false;
    fprintf(o, "<path class=\"%s\" d=\"", inflight ? "inflight" : "queued");
    for (size_t k = 0; k < p->nsamples; k++) {
        double v = inflight ? p->samples[k].inflight : p->samples[k].queued;
        if (isnan(v))
            v = prev;
        prev = v;
        double x = tx(L, p->samples[k].ts);
        long c = (long)floor(x);
        if (c == col) {
            if (v > colmax) {
                colmax = v;
                /* the column's value rises: redraw its level */
                fprintf(o, "V%.1f", ybase - colmax / vmax * h);
            }
            continue;
        }
        col = c;
        colmax = v;
        double y = ybase - v / vmax * h;
        if (!started) {
            fprintf(o, "M%.1f %.1f", x, y);
            started = true;
        } else {
            fprintf(o, "H%.1fV%.1f", x, y);
        }
    }
    if (started)
        fprintf(o, "H%.1f", tx(L, tend));
    fputs("\"/>\n", o);
}

static const char style[] = "<style>\n"
                            "text{fill:#222}\n"
                            ".title{font-size:15px;font-weight:bold}\n"
                            ".sub{fill:#555}\n"
                            ".tick{stroke:#e2e2e2;stroke-width:1}\n"
                            ".tl{font-size:10px;fill:#555;text-anchor:middle}\n"
                            ".tv{font-size:10px;fill:#555}\n"
                            ".head{fill:#e8ecf2}\n"
                            ".headt{font-weight:bold}\n"
                            ".alt{fill:#f6f6f6}\n"
                            ".lane{font-size:10px}\n"
                            ".ok{fill:#2ca02c}.etask{fill:#ff7f0e}.eworker{fill:#d62728}\n"
                            ".tmo{fill:#9467bd}.cancelled{fill:#7f7f7f}.other{fill:#b0b0b0}\n"
                            ".busy{shape-rendering:crispEdges}\n"
                            ".death{fill:#ff3030;stroke:#700000}\n"
                            ".respawn{fill:#3d7bff;stroke:#0a2a80}\n"
                            ".timeout{fill:#c9a0ff;stroke:#3b1670}\n"
                            ".terminate{stroke:#000;stroke-width:1.5;stroke-dasharray:4 3}\n"
                            ".queued{fill:none;stroke:#1f77b4;stroke-width:1.5}\n"
                            ".inflight{fill:none;stroke:#8c564b;stroke-width:1.5}\n"
                            ".axis{stroke:#888;stroke-width:1}\n"
                            "</style>\n";

static void svg_head(FILE *o, int w, double h, const char *fname) {
    fprintf(o,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%.0f\" "
            "viewBox=\"0 0 %d %.0f\" font-family=\"sans-serif\" font-size=\"11\">\n",
            w, h, w, h);
    fputs("<title>procpool trace: ", o);
    put_esc(o, fname, 200);
    fputs("</title>\n", o);
    fputs(style, o);
    fprintf(o, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%.0f\" fill=\"#fff\"/>\n", w, h);
    fputs("<text class=\"title\" x=\"10\" y=\"22\">procpool trace: ", o);
    put_esc(o, fname, 120);
    fputs("</text>\n", o);
}

/* ticks: a 1-2-5 step for about eight of them, in a unit for the span */
static void draw_axis(FILE *o, const struct layout *L, double ytop, double ybot) {
    double raw = L->span / 8, p = pow(10, floor(log10(raw))), f = raw / p;
    double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
    double div = L->span < 2000 ? 1 : L->span < 2e6 ? 1e3 : 1e6;
    const char *unit = div == 1 ? "\xc2\xb5s" : div == 1e3 ? "ms" : "s";
    int dec = (int)-floor(log10(step / div) + 1e-9);
    if (dec < 0)
        dec = 0;
    fprintf(o, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", L->x0,
            ytop, L->x0 + L->pw, ytop);
    for (double t = ceil(L->t0 / step - 1e-9) * step; t <= L->t0 + L->span * (1 + 1e-9);
         t += step) {
        double x = tx(L, t);
        fprintf(o, "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x,
                ytop, x, ybot);
        fprintf(o, "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\">%.*f %s</text>\n", x, ytop - 4, dec,
                fabs(t / div) < 1e-12 ? 0.0 : t / div, unit);
    }
}

static void legend_box(FILE *o, double *x, double y, const char *cls, const char *label) {
    fprintf(o, "<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\"/>", cls, *x,
            y - 9);
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", *x + 18, y, label);
    *x += 26 + 6.2 * (double)strlen(label);
}

static void legend_line(FILE *o, double *x, double y, const char *cls, const char *label) {
    fprintf(o, "<path class=\"%s\" d=\"M%.1f %.1fh16\"/>", cls, *x, y - 4);
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", *x + 20, y, label);
    *x += 28 + 6.2 * (double)strlen(label);
}

static void legend_mark(FILE *o, double *x, double y, int kind, const char *label) {
    struct mark mk = {.kind = (uint8_t)kind};
    struct lane l = {.marks = &mk, .nmarks = 1};
    struct layout L = {.x0 = *x + 6, .pw = 1, .t0 = 0, .span = 1};
    if (kind == MK_TERMINATE)
        fprintf(o, "<line class=\"terminate\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>",
                *x + 6, y - 11, *x + 6, y + 2);
    else
        draw_lane_marks(o, &L, &l, y - 11, 13, false);
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", *x + 16, y, label);
    *x += 24 + 6.2 * (double)strlen(label);
}

#define COUNTER_H 56.0

/* the picture (write errors show in ferror(o)) */
static void render(FILE *o, struct model *m, const char *fname, int width) {
    char buf[64];
    if (!m->have_time) {
        svg_head(o, width, 90, fname);
        fprintf(o,
                "<text class=\"sub\" x=\"10\" y=\"44\">no events (%zu pools, %zu lanes named)"
                "</text>\n"
                "<text x=\"%d\" y=\"72\" text-anchor=\"middle\" font-size=\"16\">no events</text>\n"
                "</svg>\n",
                m->npools, m->nlanes, width / 2);
        return;
    }

    /* sort everything in time, and the lanes into pools */
    size_t *porder = xcalloc(m->npools, sizeof *porder);
    size_t *lorder = xcalloc(m->nlanes, sizeof *lorder);
    model_sort(m, porder, lorder);

    struct layout L = {.x0 = 200, .width = width};
    L.pw = width - L.x0 - 32;
    L.t0 = m->t0;
    L.span = m->t1 - m->t0;
    if (L.span <= 0)
        L.span = 1;
    L.rowh = m->nlanes <= 100 ? 18 : m->nlanes <= 400 ? 8 : 3;
    L.headh = m->npools <= 100 ? 20 : 8;
    bool detail = m->nspans <= DETAIL_MAX;
    size_t nmarks = 0;
    for (int k = 0; k < MK_N; k++)
        nmarks += m->nmarks_kind[k];
    bool mtips = nmarks <= MARK_TIPS_MAX;

    size_t ncounters = 0;
    for (size_t i = 0; i < m->npools; i++)
        ncounters += m->pools[i].nsamples > 0;

    double chart_top = 74;
    double chart_h = (double)m->npools * L.headh + (double)m->nlanes * L.rowh;
    double counters_top = chart_top + chart_h + 16;
    double counters_h = ncounters ? 22 + (double)ncounters * (COUNTER_H + 14) : 0;
    double legend_top = counters_top + counters_h + 8;
    double height = legend_top + (detail ? 50 : 66);
    svg_head(o, width, height, fname);

    /* the totals */
    fputs("<text class=\"sub\" x=\"10\" y=\"42\">", o);
    if (m->ntasks || !m->njobs)
        fprintf(o, "%zu tasks", m->ntasks);
    if (m->njobs)
        fprintf(o, "%s%zu jobs", m->ntasks ? ", " : "", m->njobs);
    fprintf(o, ", %zu failed", m->nfailed);
    if (m->ncancelled)
        fprintf(o, ", %zu cancelled", m->ncancelled);
    fprintf(o, "; %zu deaths, %zu respawns, %zu timeouts", m->nmarks_kind[MK_DEATH],
            m->nmarks_kind[MK_RESPAWN], m->nmarks_kind[MK_TIMEOUT]);
    if (m->nmarks_kind[MK_TERMINATE])
        fprintf(o, ", %zu terminated", m->nmarks_kind[MK_TERMINATE]);
    fmt_time(buf, sizeof buf, L.span);
    fprintf(o, "; %zu pools, %zu lanes; %s</text>\n", m->npools, m->nlanes, buf);

    draw_axis(o, &L, chart_top - 8, chart_top + chart_h);

    /* pools and lanes */
    double y = chart_top;
    size_t li = 0;
    for (size_t pi = 0; pi < m->npools; pi++) {
        const struct pool *p = &m->pools[porder[pi]];
        double pool_top = y;
        fprintf(o,
                "<g class=\"pool\">\n<rect class=\"head\" x=\"0\" y=\"%.1f\" width=\"%d\" "
                "height=\"%.1f\"/>\n",
                y, width, L.headh - 1);
        if (L.headh >= 12) {
            fprintf(o, "<text class=\"headt\" x=\"6\" y=\"%.1f\">", y + L.headh - 6);
            if (p->name)
                put_esc(o, p->name, 150);
            else
                fprintf(o, "pid %lld", (long long)p->pid);
            fputs("</text>\n", o);
        }
        y += L.headh;
        size_t alt = 0;
        for (; li < m->nlanes && m->lanes[lorder[li]].pool == porder[pi]; li++, alt++) {
            const struct lane *l = &m->lanes[lorder[li]];
            fputs("<g class=\"lane\">", o);
            if (alt % 2)
                fprintf(o, "<rect class=\"alt\" x=\"0\" y=\"%.1f\" width=\"%d\" height=\"%.1f\"/>",
                        y, width, L.rowh);
            if (L.rowh >= 8) {
                fprintf(o, "<text class=\"lane\" x=\"16\" y=\"%.1f\">", y + L.rowh - 5);
                if (l->name)
                    put_esc(o, l->name, 30);
                else
                    fprintf(o, "tid %lld", (long long)l->tid);
                fputs("</text>", o);
            }
            fputc('\n', o);
            double sy = L.rowh >= 8 ? y + 2 : y, sh = L.rowh >= 8 ? L.rowh - 4 : L.rowh - 0.5;
            draw_lane_spans(o, m, &L, l, sy, sh, detail);
            draw_lane_marks(o, &L, l, y + 1, L.rowh - 2, mtips);
            fputs("</g>\n", o);
            y += L.rowh;
        }
        for (size_t k = 0; k < p->nterms; k++) {
            double x = tx(&L, p->terms[k].ts);
            fprintf(o, "<line class=\"terminate\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\">",
                    x, pool_top, x, y);
            mark_tip(o, &p->terms[k]);
            fputs("</line>\n", o);
        }
        fputs("</g>\n", o);
    }

    for (size_t k = 0; k < m->ngterms; k++) { /* across every pool */
        double x = tx(&L, m->gterms[k].ts);
        fprintf(o, "<line class=\"terminate\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\">", x,
                chart_top, x, y);
        mark_tip(o, &m->gterms[k]);
        fputs("</line>\n", o);
    }

    /* counters */
    if (ncounters) {
        double cy = counters_top;
        fprintf(o, "<text class=\"headt\" x=\"6\" y=\"%.1f\">queue</text>\n", cy + 12);
        cy += 22;
        for (size_t pi = 0; pi < m->npools; pi++) {
            const struct pool *p = &m->pools[porder[pi]];
            if (!p->nsamples)
                continue;
            double vmax = 1, mq = 0, mf = 0;
            for (size_t k = 0; k < p->nsamples; k++) {
                if (p->samples[k].queued > mq)
                    mq = p->samples[k].queued;
                if (p->samples[k].inflight > mf)
                    mf = p->samples[k].inflight;
            }
            vmax = mq > vmax ? mq : vmax;
            vmax = mf > vmax ? mf : vmax;
            double base = cy + COUNTER_H;
            fprintf(o, "<g class=\"counter\">\n<text class=\"lane\" x=\"16\" y=\"%.1f\">", cy + 10);
            if (p->name)
                put_esc(o, p->name, 30);
            else
                fprintf(o, "pid %lld", (long long)p->pid);
            fprintf(o,
                    "</text>\n<text class=\"lane\" x=\"16\" y=\"%.1f\">max queued %.0f, "
                    "in flight %.0f</text>\n",
                    cy + 24, mq, mf);
            fprintf(o, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
                    L.x0, base, L.x0 + L.pw, base);
            fprintf(o, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
                    L.x0, cy, L.x0, base);
            fprintf(o, "<text class=\"tv\" x=\"%.1f\" y=\"%.1f\">%.0f</text>\n", L.x0 + 4, cy + 8,
                    vmax);
            draw_series(o, &L, p, false, base, COUNTER_H - 2, vmax, m->t1);
            draw_series(o, &L, p, true, base, COUNTER_H - 2, vmax, m->t1);
            fputs("</g>\n", o);
            cy += COUNTER_H + 14;
        }
    }

    /* the legend */
    double lx = 10, ly = legend_top + 14;
    fputs("<g class=\"legend\">\n", o);
    legend_box(o, &lx, ly, "ok", "ok");
    legend_box(o, &lx, ly, "etask", "PP_ETASK / failed");
    legend_box(o, &lx, ly, "eworker", "PP_EWORKER / killed");
    legend_box(o, &lx, ly, "tmo", "PP_ETASKTIMEOUT / timeout");
    legend_box(o, &lx, ly, "cancelled", "cancelled");
    legend_box(o, &lx, ly, "other", "no outcome");
    lx = 10, ly += 22;
    legend_mark(o, &lx, ly, MK_DEATH, "worker death");
    legend_mark(o, &lx, ly, MK_RESPAWN, "respawn");
    legend_mark(o, &lx, ly, MK_TIMEOUT, "task timeout");
    legend_mark(o, &lx, ly, MK_TERMINATE, "pool terminated");
    legend_line(o, &lx, ly, "queued", "queued");
    legend_line(o, &lx, ly, "inflight", "in flight");
    if (!detail)
        fprintf(o,
                "<text class=\"sub\" x=\"10\" y=\"%.1f\">%zu spans: spans narrower than a "
                "pixel are merged into busy bars of their worst outcome; no tooltips</text>\n",
                ly + 20, m->nspans);
    fputs("</g>\n</svg>\n", o);

    free(porder);
    free(lorder);
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static void usage(FILE *o) {
    fprintf(o,
            "usage: %s [-o OUT.svg] [-w WIDTH] [FILE]\n"
            "Draw a procpool trace file (PROCPOOL_TRACE=FILE, procpool --trace FILE) as one\n"
            "self-contained SVG: a lane per worker or job slot, spans coloured by outcome,\n"
            "deaths, respawns, timeouts, and the queue under it.\n"
            "  FILE           the trace; '-' or none: standard input (may be cut short)\n"
            "  -o, --output OUT  write the SVG to OUT instead of standard output\n"
            "  -w, --width N  the picture's width in pixels (400-20000; default 1200)\n"
            "  -h, --help     this text\n"
            "  -V, --version  the version\n",
            prog);
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"width", required_argument, NULL, 'w'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int width = 1200, c;

    while ((c = getopt_long(argc, argv, "o:w:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'w': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 400 || v > 20000) {
                fprintf(stderr, "%s: -w %s: the width is a number of pixels, 400 to 20000\n", prog,
                        optarg);
                return 2;
            }
            width = (int)v;
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': printf("%s %s\n", prog, PROCPOOL_TRACE_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "%s: one trace file at a time\n", prog);
        usage(stderr);
        return 2;
    }
    const char *path = optind < argc ? argv[optind] : "-";
    bool is_stdin = !strcmp(path, "-");
    const char *fname = is_stdin ? "(standard input)" : path;

    FILE *in = is_stdin ? stdin : fopen(path, "r");
    if (!in) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return 1;
    }
    struct model m = {0};
    int rc = read_trace(&m, in, fname);
    if (!is_stdin)
        fclose(in);
    if (rc) {
        model_free(&m);
        return 1;
    }

    FILE *o = stdout;
    if (out && strcmp(out, "-")) {
        o = fopen(out, "w");
        if (!o) {
            fprintf(stderr, "%s: %s: %s\n", prog, out, strerror(errno));
            model_free(&m);
            return 1;
        }
    }
    static char obuf[1 << 16];
    setvbuf(o, obuf, _IOFBF, sizeof obuf);
    const char *base = strrchr(fname, '/');
    render(o, &m, base && base[1] ? base + 1 : fname, width);
    model_free(&m);
    bool bad = ferror(o) != 0;
    if (o == stdout)
        bad |= fflush(o) != 0;
    else
        bad |= fclose(o) != 0;
    if (bad) {
        fprintf(stderr, "%s: %s: cannot write: %s\n", prog, out ? out : "standard output",
                strerror(errno));
        if (o != stdout)
            unlink(out);
        return 1;
    }
    return 0;
}
