import { createContext, lazy, Suspense, useContext, useEffect, useMemo, useState, type ComponentProps } from "react";
import { Link } from "react-router-dom";
import { getJson } from "../../api/client";
import type { Chart as ChartCanvas } from "../../components/Chart";
import { useCompany } from "../../components/company";
import { formatDate, formatNumber } from "../../components/format";
import { ErrorBox, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";

type Counts = Record<string, number>;
interface Compliance {
  met: number;
  breached: number;
  pending: number;
  compliance_pct: number | null;
}
interface DashboardData {
  offenses: { total: number; open: number; by_status: Counts; open_by_severity: Counts };
  incidents: { total: number; open: number; closed: number; by_status: Counts; by_priority: Counts; open_by_priority: Counts; by_severity: Counts; critical_open: number };
  sla: { compliance_pct: number | null; overall: Compliance; by_priority: Record<string, { incidents: number; compliance_pct: number | null; breached: number }> };
  tickets: { total: number; open: number; overdue: number; closed: number };
  eps: { average_eps: number | null; peak_eps: number | null; contracted_eps: number | null };
  threat_alerts: { id: number; short_id: string; title: string; tlp: string; published_time: string }[] | null;
  ti_matches?: { open_incidents_with_matches: number; open_offenses_with_matches: number } | null;
}
interface SlaCompliance {
  by_priority: Record<string, Record<"tta" | "ttn" | "ttdn" | "overall", Compliance>>;
}
interface EpsGraph {
  contracted_eps: number | null;
  points: { window_start: string; average_eps: number; peak_eps: number }[];
}

const DAY = 86_400_000;

// ECharts (most of the dashboard's JavaScript) loads beside the key figures, not before them: the
// cards are drawn and take input as soon as the dashboard's numbers arrive.
const EChart = lazy(() => import("../../components/Chart").then((m) => ({ default: m.Chart })));

/**
 * True once the key figures are on screen and the browser has had a moment: ECharts' code (the
 * dashboard's heaviest work) is evaluated then, so it does not hold up the first screen's input.
 */
function useAfterPaint(ready: boolean): boolean {
  const [done, setDone] = useState(false);
  useEffect(() => {
    if (!ready || done) return;
    let timer = 0;
    const frame = requestAnimationFrame(() => {
      timer = window.setTimeout(() => setDone(true), 250);
    });
    return () => {
      cancelAnimationFrame(frame);
      window.clearTimeout(timer);
    };
  }, [ready, done]);
  return done;
}

const ChartsReady = createContext(false);

function Chart(props: ComponentProps<typeof ChartCanvas>) {
  const placeholder = <div className="chart" style={{ height: props.height ?? 280 }} role="img" aria-label={props.summary} aria-busy="true" />;
  if (!useContext(ChartsReady)) return placeholder;
  return (
    <Suspense fallback={placeholder}>
      <EChart {...props} />
    </Suspense>
  );
}

/** Never settles: a request that waits for another's answer first. */
const later = <T,>() => new Promise<T>(() => undefined);
const WEEKS = 8;

async function countIn(path: string, scope: object, from: Date, to: Date): Promise<number> {
  const page = await getJson<{ total: number }>(path, { ...scope, from: from.toISOString(), to: to.toISOString(), limit: 1 });
  return page.total;
}

/** New offenses and incidents in the last 30 days against the 30 before, and weekly incident counts. */
async function trends(scope: object) {
  const now = new Date();
  const start = new Date(now.getTime() - 30 * DAY);
  const before = new Date(now.getTime() - 60 * DAY);
  const weeks = Array.from({ length: WEEKS }, (_, i) => new Date(now.getTime() - (WEEKS - i) * 7 * DAY));
  const [offNow, offBefore, incNow, incBefore, ...weekly] = await Promise.all([
    countIn("/tenant/offenses/", scope, start, now),
    countIn("/tenant/offenses/", scope, before, start),
    countIn("/tenant/soar-incidents/", scope, start, now),
    countIn("/tenant/soar-incidents/", scope, before, start),
    ...weeks.map((w) => countIn("/tenant/soar-incidents/", scope, w, new Date(w.getTime() + 7 * DAY))),
  ]);
  return { offNow, offBefore, incNow, incBefore, weeks, weekly };
}

function Change({ now, before }: { now: number; before: number }) {
  if (!before) return <span className="muted">no earlier data</span>;
  const pct = ((now - before) / before) * 100;
  const word = pct > 0 ? "up" : pct < 0 ? "down" : "flat";
  return (
    <span className={`delta ${word}`}>
      {pct > 0 ? "▲" : pct < 0 ? "▼" : "■"} {Math.abs(pct).toFixed(0)}% vs previous 30 days
    </span>
  );
}

function Stat({ id, label, value, children }: { id: string; label: string; value: string; children?: React.ReactNode }) {
  return (
    <div className="card stat">
      <div className="label" id={`${id}-label`}>
        {label}
      </div>
      <div className="value" data-testid={id} aria-labelledby={`${id}-label`}>
        {value}
      </div>
      {children}
    </div>
  );
}

const PRIORITIES = ["P1", "P2", "P3", "P4"];

export default function Dashboard() {
  const { scope } = useCompany();
  const main = useAsync(() => getJson<DashboardData>("/tenant/dashboard/", scope), [scope.company_id]);
  // The charts' own requests and code go once the key figures are drawn: they do not compete with them.
  const ready = useAfterPaint(main.data !== undefined);
  const sla = useAsync(() => (ready ? getJson<SlaCompliance>("/tenant/sla/compliance/", scope) : later<SlaCompliance>()), [scope.company_id, ready]);
  const eps = useAsync(
    () => (ready ? getJson<EpsGraph>("/tenant/eps/graph/", { ...scope, granularity: "hour", from: new Date(Date.now() - 7 * DAY).toISOString() }) : later<EpsGraph>()),
    [scope.company_id, ready],
  );
  const trend = useAsync(() => (ready ? trends(scope) : later<Awaited<ReturnType<typeof trends>>>()), [scope.company_id, ready]);
  const d = main.data;

  const charts = useMemo(() => {
    if (!d) return null;
    const severities = Object.keys(d.offenses.open_by_severity).sort((a, b) => Number(b) - Number(a));
    return {
      severity: {
        tooltip: {},
        grid: { left: 40, right: 10, top: 20, bottom: 30 },
        xAxis: { type: "category", data: severities.map((s) => `Sev ${s}`) },
        yAxis: { type: "value", minInterval: 1 },
        series: [{ type: "bar", name: "Open offenses", data: severities.map((s) => d.offenses.open_by_severity[s]), itemStyle: { color: "#dc2626" } }],
      },
      priority: {
        tooltip: {},
        legend: { top: 0 },
        grid: { left: 40, right: 10, top: 30, bottom: 30 },
        xAxis: { type: "category", data: PRIORITIES },
        yAxis: { type: "value", minInterval: 1 },
        series: [
          { type: "bar", name: "Open", data: PRIORITIES.map((p) => d.incidents.open_by_priority[p] ?? 0) },
          { type: "bar", name: "All", data: PRIORITIES.map((p) => d.incidents.by_priority[p] ?? 0) },
        ],
      },
      status: {
        tooltip: { trigger: "item" },
        legend: { bottom: 0 },
        series: [{ type: "pie", radius: ["40%", "70%"], data: Object.entries(d.incidents.by_status).map(([name, value]) => ({ name, value })) }],
      },
    };
  }, [d]);

  const slaChart = useMemo(() => {
    if (!sla.data) return null;
    const steps = [
      ["tta", "Acknowledge (TTA)"],
      ["ttn", "Notify (TTN)"],
      ["ttdn", "Resolve (TTDN)"],
    ] as const;
    return {
      tooltip: { trigger: "axis", valueFormatter: (v: number) => `${v}%` },
      legend: { top: 0 },
      grid: { left: 40, right: 10, top: 30, bottom: 30 },
      xAxis: { type: "category", data: PRIORITIES },
      yAxis: { type: "value", max: 100, axisLabel: { formatter: "{value}%" } },
      series: steps.map(([key, name]) => ({ type: "bar", name, data: PRIORITIES.map((p) => sla.data?.by_priority[p]?.[key]?.compliance_pct ?? 0) })),
    };
  }, [sla.data]);

  const epsChart = useMemo(() => {
    if (!eps.data) return null;
    const points = eps.data.points;
    return {
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 50, right: 10, top: 30, bottom: 30 },
      xAxis: { type: "category", data: points.map((p) => formatDate(p.window_start)) },
      yAxis: { type: "value", name: "EPS" },
      series: [
        { type: "line", name: "Average EPS", data: points.map((p) => p.average_eps), showSymbol: false },
        { type: "line", name: "Peak EPS", data: points.map((p) => p.peak_eps), showSymbol: false },
        ...(eps.data.contracted_eps ? [{ type: "line", name: "Contracted", data: points.map(() => eps.data!.contracted_eps), showSymbol: false, lineStyle: { type: "dashed" } }] : []),
      ],
    };
  }, [eps.data]);

  const weeklyChart = useMemo(() => {
    if (!trend.data) return null;
    return {
      tooltip: { trigger: "axis" },
      grid: { left: 40, right: 10, top: 20, bottom: 30 },
      xAxis: { type: "category", data: trend.data.weeks.map((w) => w.toISOString().slice(5, 10)) },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ type: "bar", name: "New incidents", data: trend.data.weekly }],
    };
  }, [trend.data]);

  if (main.error) return <ErrorBox error={main.error} onRetry={main.reload} />;
  if (!d) return <Loading label="Loading the dashboard…" />;
  const pct = (v: number | null | undefined) => (v === null || v === undefined ? "—" : `${v.toFixed(1)}%`);
  return (
    <ChartsReady.Provider value={ready}>
      <PageHeader title="Dashboard" />
      <section className="grid cards" aria-label="Key figures" data-testid="dashboard-ready">
        <Stat id="offenses-open" label="Open offenses" value={formatNumber(d.offenses.open)}>
          {trend.data ? <Change now={trend.data.offNow} before={trend.data.offBefore} /> : null}
        </Stat>
        <Stat id="incidents-open" label="Open incidents" value={formatNumber(d.incidents.open)}>
          {trend.data ? <Change now={trend.data.incNow} before={trend.data.incBefore} /> : null}
        </Stat>
        <Stat id="incidents-critical" label="Critical open incidents" value={formatNumber(d.incidents.critical_open)} />
        <Stat id="sla-compliance" label="SLA compliance (30 days)" value={pct(d.sla.compliance_pct)} />
        <Stat id="tickets-open" label="Open tickets" value={formatNumber(d.tickets.open)}>
          <span className="muted">{formatNumber(d.tickets.overdue)} overdue</span>
        </Stat>
        <Stat id="eps-average" label="Average EPS (24 h)" value={formatNumber(d.eps.average_eps, 1)}>
          <span className="muted">{d.eps.contracted_eps ? `of ${formatNumber(d.eps.contracted_eps)} contracted` : "no contracted volume"}</span>
        </Stat>
        {d.ti_matches ? (
          <Stat id="incidents-ti-matched" label="Open incidents named by threat intel" value={formatNumber(d.ti_matches.open_incidents_with_matches)}>
            <span className="muted">{formatNumber(d.ti_matches.open_offenses_with_matches)} open offenses</span>
          </Stat>
        ) : null}
      </section>
      <section className="grid charts" aria-label="Charts">
        <div className="card">
          <h2>Open offenses by severity</h2>
          {charts ? <Chart option={charts.severity} summary={`Open offenses by severity: ${Object.entries(d.offenses.open_by_severity).map(([k, v]) => `severity ${k}: ${v}`).join(", ")}`} /> : null}
        </div>
        <div className="card">
          <h2>Incidents by priority</h2>
          {charts ? <Chart option={charts.priority} summary={`Incidents by priority: ${PRIORITIES.map((p) => `${p} ${d.incidents.by_priority[p] ?? 0}`).join(", ")}`} /> : null}
        </div>
        <div className="card">
          <h2>Incidents by status</h2>
          {charts ? <Chart option={charts.status} summary={`Incidents by status: ${Object.entries(d.incidents.by_status).map(([k, v]) => `${k} ${v}`).join(", ")}`} /> : null}
        </div>
        <div className="card">
          <h2>SLA compliance by priority and step</h2>
          {sla.error ? <ErrorBox error={sla.error} onRetry={sla.reload} /> : slaChart ? <Chart option={slaChart} summary="SLA compliance percentage per priority for acknowledge, notify and resolve" /> : <Loading />}
        </div>
        <div className="card">
          <h2>EPS against contracted volume (7 days)</h2>
          {eps.error ? <ErrorBox error={eps.error} onRetry={eps.reload} /> : epsChart ? <Chart option={epsChart} summary="Average and peak events per second per hour against the contracted volume" /> : <Loading />}
        </div>
        <div className="card">
          <h2>New incidents per week</h2>
          {trend.error ? <ErrorBox error={trend.error} onRetry={trend.reload} /> : weeklyChart ? <Chart option={weeklyChart} summary={`New incidents per week: ${trend.data?.weekly.join(", ")}`} /> : <Loading />}
        </div>
      </section>
      <section className="card" style={{ marginTop: "1rem" }} aria-labelledby="alerts-title">
        <h2 id="alerts-title">Latest threat alerts</h2>
        {d.threat_alerts?.length ? (
          <ul>
            {d.threat_alerts.slice(0, 6).map((a) => (
              <li key={a.id}>
                <Link to={`/threat-alerts/${a.id}`}>{a.title}</Link> <span className="muted">· TLP {a.tlp} · {formatDate(a.published_time)}</span>
              </li>
            ))}
          </ul>
        ) : (
          <p className="muted">No threat alerts.</p>
        )}
      </section>
    </ChartsReady.Provider>
  );
}
