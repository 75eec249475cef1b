/*
 * Table, JSON and plot output. See load_report.h.
 */
#include "tools/load/load_report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/base.h"

static const char *const mode_names[] = {"normal", "slow", "stall", "churn"};

double sl_load_report_delivery_rate(const sl_load_result_t *r)
{
    double t = r->run_s + r->drain_s;
    return t > 0 ? (double)r->delivered / t : 0;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void hist_row(FILE *f, const char *name, const sl_load_hist_t *h)
{
    if (!h || h->total_count == 0) {
        fprintf(f, "  %-18s (no samples)\n", name);
        return;
    }
    fprintf(f, "  %-18s n=%" PRIu64 " p50=%.3f p90=%.3f p99=%.3f p99.9=%.3f max=%.3f ms\n", name,
            h->total_count, ms(sl_load_hist_percentile(h, 50)), ms(sl_load_hist_percentile(h, 90)),
            ms(sl_load_hist_percentile(h, 99)), ms(sl_load_hist_percentile(h, 99.9)), ms(h->max));
}

void sl_load_report_table(FILE *f, const sl_load_result_t *r)
{
    const sl_load_opts_t *o = r->opts;
    fprintf(f, "sluice-load: %s %s %s pubs=%u subs=%u sessions=%u rate=%g size=%u\n",
            sl_load_scenario_name(o->scenario), sl_load_proto_name(o->proto),
            sl_load_opts_target(o), o->publishers, o->subscribers, o->sessions, o->rate, o->size_bytes);
    fprintf(f, "  phases             setup %.2f s, publish %.2f s, drain %.2f s%s%s\n",
            r->setup_s, r->run_s, r->drain_s, r->drain_timed_out ? " (drain timed out)" : "",
            r->interrupted ? " (interrupted)" : "");
    fprintf(f, "  published          %" PRIu64 " (%.0f/s), errors %" PRIu64
               ", behind schedule %" PRIu64 "\n",
            r->published, r->run_s > 0 ? (double)r->published / r->run_s : 0.0,
            r->publish_errors, r->behind_schedule);
    fprintf(f, "  delivered          %" PRIu64 " (%.0f/s), lagging readers %" PRIu64 "\n",
            r->delivered, sl_load_report_delivery_rate(r), r->delivered_lagging);
    hist_row(f, "latency", r->latency);
    hist_row(f, "latency from send", r->latency_from_send);
    hist_row(f, "latency lagging", r->latency_lagging);
    hist_row(f, "publish lateness", r->send_lag);
    hist_row(f, "subscribe time", r->subscribe_latency);
    hist_row(f, "/health time", r->health_latency);
    fprintf(f, "  errors             conn %" PRIu64 ", stream %" PRIu64 ", subscribe %" PRIu64
               ", publish %" PRIu64 "\n",
            r->conn_errors, r->stream_errors, r->subscribe_errors, r->publish_errors);
    fprintf(f, "  order              gaps %" PRIu64 ", out-of-order %" PRIu64 ", bad %" PRIu64
               ", gap notices %" PRIu64 ", count mismatches %" PRIu64 "\n",
            r->gaps, r->out_of_order, r->bad_payloads, r->gap_events, r->count_mismatches);
    if (o->churn_rate > 0)
        fprintf(f, "  churn              started %" PRIu64 ", completed %" PRIu64
                   ", skipped %" PRIu64 "\n",
                r->churn_started, r->churn_completed, r->churn_skipped);
    if (r->target_cpu_s >= 0) {
        double per_m = r->delivered ? r->target_cpu_s / ((double)r->delivered / 1e6) : 0;
        fprintf(f, "  server cpu         %.2f s (%.3f s per million deliveries)\n",
                r->target_cpu_s, per_m);
    }
    if (r->target_rss_max >= 0)
        fprintf(f, "  server rss         max %.1f MiB, end %.1f MiB\n",
                (double)r->target_rss_max / 1048576.0, (double)r->target_rss_end / 1048576.0);
    fprintf(f, "  load cpu           %.2f s\n", r->self_cpu_s);
    fprintf(f, "  verdict            %s (exit %d)\n", r->verdict, r->exit_code);
}

static void json_hist(FILE *f, const char *name, const sl_load_hist_t *h, bool comma)
{
    fprintf(f, "  \"%s\": ", name);
    if (!h || h->total_count == 0) {
        fprintf(f, "null%s\n", comma ? "," : "");
        return;
    }
    fprintf(f,
            "{\"count\": %" PRIu64 ", \"min_ns\": %" PRIu64 ", \"mean_ns\": %.0f, "
            "\"p50_ns\": %" PRIu64 ", \"p90_ns\": %" PRIu64 ", \"p99_ns\": %" PRIu64
            ", \"p999_ns\": %" PRIu64 ", \"max_ns\": %" PRIu64 "}%s\n",
            h->total_count, h->min, sl_load_hist_mean(h), sl_load_hist_percentile(h, 50),
            sl_load_hist_percentile(h, 90), sl_load_hist_percentile(h, 99),
            sl_load_hist_percentile(h, 99.9), h->max, comma ? "," : "");
}

static void json_opts(FILE *f, const sl_load_opts_t *o)
{
    fprintf(f,
            "  \"config\": {\"target\": \"%s\", \"proto\": \"%s\", \"scenario\": \"%s\", "
            "\"publishers\": %u, \"subscribers\": %u, \"sessions\": %u, "
            "\"streams_per_conn\": %u, \"rate\": %g, \"size\": %u, \"duration_s\": %g, "
            "\"events\": %" PRIu64 ", \"from\": \"%s\", \"slow_fraction\": %g, "
            "\"stall_fraction\": %g, \"churn_rate\": %g, \"session_prefix\": \"%s\"},\n",
            sl_load_opts_target(o), sl_load_proto_name(o->proto),
            sl_load_scenario_name(o->scenario), o->publishers, o->subscribers, o->sessions,
            o->streams_per_conn, o->rate, o->size_bytes, o->duration_s, o->events,
            o->from_first ? "first" : "live", o->slow_fraction, o->stall_fraction, o->churn_rate,
            o->session_prefix);
}

static void json_totals(FILE *f, const sl_load_result_t *r)
{
    double per_m = r->target_cpu_s >= 0 && r->delivered
                       ? r->target_cpu_s / ((double)r->delivered / 1e6)
                       : -1;
    fprintf(f,
            "  \"setup_s\": %.3f, \"run_s\": %.3f, \"drain_s\": %.3f,\n"
            "  \"published\": %" PRIu64 ", \"publish_errors\": %" PRIu64
            ", \"published_per_s\": %.1f, \"behind_schedule\": %" PRIu64 ",\n"
            "  \"delivered\": %" PRIu64 ", \"delivered_lagging\": %" PRIu64
            ", \"delivered_per_s\": %.1f,\n"
            "  \"conn_errors\": %" PRIu64 ", \"stream_errors\": %" PRIu64
            ", \"subscribe_errors\": %" PRIu64 ",\n"
            "  \"gaps\": %" PRIu64 ", \"out_of_order\": %" PRIu64 ", \"bad_payloads\": %" PRIu64
            ", \"gap_events\": %" PRIu64 ", \"count_mismatches\": %" PRIu64 ",\n"
            "  \"churn_started\": %" PRIu64 ", \"churn_completed\": %" PRIu64
            ", \"churn_skipped\": %" PRIu64 ",\n"
            "  \"drain_timed_out\": %s, \"hard_deadline\": %s, \"interrupted\": %s,\n"
            "  \"target_cpu_s\": %.3f, \"target_cpu_s_per_million_deliveries\": %.4f,\n"
            "  \"target_rss_max_bytes\": %" PRId64 ", \"target_rss_end_bytes\": %" PRId64 ",\n"
            "  \"load_cpu_s\": %.3f,\n",
            r->setup_s, r->run_s, r->drain_s, r->published, r->publish_errors,
            r->run_s > 0 ? (double)r->published / r->run_s : 0.0, r->behind_schedule,
            r->delivered,
            r->delivered_lagging, sl_load_report_delivery_rate(r), r->conn_errors,
            r->stream_errors, r->subscribe_errors, r->gaps, r->out_of_order, r->bad_payloads,
            r->gap_events, r->count_mismatches, r->churn_started, r->churn_completed,
            r->churn_skipped, r->drain_timed_out ? "true" : "false",
            r->hard_deadline ? "true" : "false", r->interrupted ? "true" : "false",
            r->target_cpu_s, per_m, r->target_rss_max, r->target_rss_end, r->self_cpu_s);
}

static void json_series(FILE *f, const sl_load_result_t *r)
{
    fprintf(f, "  \"series\": [\n");
    for (size_t i = 0; i < r->sample_count; i++) {
        const sl_load_sample_t *s = &r->samples[i];
        fprintf(f,
                "    {\"t_s\": %.3f, \"published\": %" PRIu64 ", \"delivered\": %" PRIu64
                ", \"p50_ns\": %" PRIu64 ", \"p90_ns\": %" PRIu64 ", \"p99_ns\": %" PRIu64
                ", \"p999_ns\": %" PRIu64 ", \"max_ns\": %" PRIu64 ", \"errors\": %" PRIu64
                ", \"subscribers\": %u, \"rss_bytes\": %" PRId64 ", \"fds\": %" PRId64
                ", \"cpu_pct\": %.1f, \"lag_ms\": %.3f}%s\n",
                s->t_s, s->published, s->delivered, s->p50_ns, s->p90_ns, s->p99_ns, s->p999_ns,
                s->max_ns, s->errors, s->subscribers, s->rss_bytes, s->fds, s->cpu_pct, s->lag_ms,
                i + 1 < r->sample_count ? "," : "");
    }
    fprintf(f, "  ],\n");
}

static void json_subs(FILE *f, const sl_load_result_t *r)
{
    fprintf(f, "  \"subscribers\": [\n");
    for (size_t i = 0; i < r->sub_count; i++) {
        const sl_load_sub_result_t *s = &r->subs[i];
        fprintf(f,
                "    {\"index\": %u, \"session\": %u, \"mode\": \"%s\", \"checked\": %s, "
                "\"ok\": %s, \"received\": %" PRIu64 ", \"expected\": %" PRIu64
                ", \"gaps\": %" PRIu64 ", \"out_of_order\": %" PRIu64 ", \"bad\": %" PRIu64
                ", \"gap_events\": %" PRIu64 ", \"last_id\": %" PRIu64 "}%s\n",
                s->index, s->session, mode_names[s->mode], s->checked ? "true" : "false",
                s->ok ? "true" : "false", s->received, s->expected, s->gaps, s->out_of_order,
                s->bad, s->gap_events, s->last_id, i + 1 < r->sub_count ? "," : "");
    }
    fprintf(f, "  ]\n");
}

int sl_load_report_json(const char *path, const sl_load_result_t *r)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "{\n  \"tool\": \"sluice-load\",\n  \"exit_code\": %d,\n  \"verdict\": \"%s\",\n",
            r->exit_code, r->verdict);
    json_opts(f, r->opts);
    json_totals(f, r);
    json_hist(f, "latency", r->latency, true);
    json_hist(f, "latency_from_send", r->latency_from_send, true);
    json_hist(f, "latency_lagging", r->latency_lagging, true);
    json_hist(f, "publish_lateness", r->send_lag, true);
    json_hist(f, "subscribe_latency", r->subscribe_latency, true);
    json_hist(f, "health_latency", r->health_latency, true);
    json_series(f, r);
    json_subs(f, r);
    fprintf(f, "}\n");
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

static int write_dat(const char *path, const sl_load_result_t *r)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "# t_s published/s delivered/s p50_ms p99_ms p999_ms max_ms rss_mib cpu_pct\n");
    for (size_t i = 0; i < r->sample_count; i++) {
        const sl_load_sample_t *s = &r->samples[i];
        fprintf(f, "%.3f %" PRIu64 " %" PRIu64 " %.4f %.4f %.4f %.4f %.2f %.1f\n", s->t_s,
                s->published, s->delivered, ms(s->p50_ns), ms(s->p99_ns), ms(s->p999_ns),
                ms(s->max_ns), s->rss_bytes >= 0 ? (double)s->rss_bytes / 1048576.0 : 0.0,
                s->cpu_pct);
    }
    return fclose(f) == 0 ? 0 : -errno;
}

static bool have_gnuplot(void)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char exe[4200];
        snprintf(exe, sizeof(exe), "%s/gnuplot", d);
        if (access(exe, X_OK) == 0)
            return true;
    }
    return false;
}

int sl_load_report_plot(const char *path, const sl_load_result_t *r)
{
    size_t n = strlen(path);
    bool svg = n > 4 && strcmp(path + n - 4, ".svg") == 0;
    bool png = n > 4 && strcmp(path + n - 4, ".png") == 0;
    if (!svg && !png)
        return SL_EINVAL;
    if (!have_gnuplot())
        return -ENOENT;
    char dat[600];
    snprintf(dat, sizeof(dat), "%s.dat", path);
    int rc = write_dat(dat, r);
    if (rc < 0)
        return rc;
    FILE *g = popen("gnuplot", "w");
    if (!g)
        return -errno;
    fprintf(g, "set terminal %s size 1000,900\nset output '%s'\n",
            svg ? "svg dynamic" : "pngcairo noenhanced", path);
    fprintf(g, "set multiplot layout 3,1 title 'sluice-load %s: %u subscribers, %g events/s'\n",
            sl_load_scenario_name(r->opts->scenario), r->opts->subscribers, r->opts->rate);
    fprintf(g, "set grid\nset key left top\nset xlabel 'seconds'\n");
    fprintf(g, "set ylabel 'deliveries/s'\nset y2label 'published/s'\nset y2tics\n"
               "plot '%s' using 1:3 with lines title 'delivered/s', "
               "'' using 1:2 axes x1y2 with lines title 'published/s (right)'\n"
               "unset y2tics\nunset y2label\n", dat);
    fprintf(g, "set logscale y\nset ylabel 'latency ms'\nplot '%s' using 1:($4>0?$4:1/0) with "
               "lines title 'p50', '' using 1:($5>0?$5:1/0) with lines title 'p99', "
               "'' using 1:($6>0?$6:1/0) with lines title 'p99.9', '' using 1:($7>0?$7:1/0) "
               "with lines title 'max'\nunset logscale y\n", dat);
    fprintf(g, "set ylabel 'server RSS MiB'\nplot '%s' using 1:8 with lines title 'rss'\n", dat);
    fprintf(g, "unset multiplot\n");
    int st = pclose(g);
    if (st == -1)
        return -errno;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : SL_EINVAL;
}
