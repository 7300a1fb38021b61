// Threat-intel matches: indicators of a Cyware alert found in an offense, incident or ticket.
import { Link, useSearchParams } from "react-router-dom";
import { getJson } from "../../api/client";
import type { components } from "../../api/schema";
import { useSession } from "../../auth/session";
import { useCompany } from "../../components/company";
import { formatDate } from "../../components/format";
import { Empty, ErrorBox, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";

type TiMatch = components["schemas"]["TiMatch"];

const RECORD_PATHS: Record<string, { api: string; page: string; label: string }> = {
  offenses: { api: "/tenant/offenses/", page: "/offenses", label: "offense" },
  incidents: { api: "/tenant/soar-incidents/", page: "/incidents", label: "incident" },
  tickets: { api: "/tenant/itsm-tickets/", page: "/tickets", label: "ticket" },
};
const RECORD_PAGES: Record<string, string> = { offense: "/offenses", incident: "/incidents", ticket: "/tickets" };

export function useMayReadMatches(): boolean {
  const session = useSession();
  return session.can("THREAT_INTELLIGENCE") && session.can("DASHBOARD");
}

function MatchTable({ items, withRecord }: { items: TiMatch[]; withRecord?: boolean }) {
  return (
    <div className="table-wrap" tabIndex={0} role="region" aria-label="Threat-intel matches">
      <table data-testid="ti-matches">
        <thead>
          <tr>
            {withRecord ? <th scope="col">Record</th> : null}
            <th scope="col">Indicator</th>
            <th scope="col">Kind</th>
            <th scope="col">Alert</th>
            <th scope="col">TLP</th>
            <th scope="col">First seen</th>
            <th scope="col">Last seen</th>
          </tr>
        </thead>
        <tbody>
          {items.map((m) => (
            <tr key={m.id}>
              {withRecord ? (
                <td>
                  <Link to={`${RECORD_PAGES[m.record_type] ?? "/"}/${m.record_id}`}>
                    {m.record_type} {m.record_id}
                  </Link>
                </td>
              ) : null}
              <td>
                <code>{m.indicator}</code>
              </td>
              <td>{m.indicator_kind}</td>
              <td>
                <Link to={`/threat-alerts/${m.alert_id}`}>
                  {m.alert_short_id}: {m.alert_title}
                </Link>
              </td>
              <td>{m.alert_tlp ?? "—"}</td>
              <td>{formatDate(m.first_seen)}</td>
              <td>{formatDate(m.last_seen)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The matches of one record, on its detail page. */
export function RecordMatches({ kind, id }: { kind: string; id: string }) {
  const { scope } = useCompany();
  const allowed = useMayReadMatches();
  const target = RECORD_PATHS[kind];
  const state = useAsync(
    () => (allowed && target ? getJson<{ items: TiMatch[]; total: number }>(`${target.api}${encodeURIComponent(id)}/ti-matches/`, scope) : Promise.resolve(null)),
    [kind, id, scope.company_id, allowed],
  );
  if (!allowed || !target) return null;
  return (
    <section className="card" aria-labelledby="ti-title">
      <h2 id="ti-title">Threat-intel matches</h2>
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {state.loading && !state.data ? <Loading label="Looking for threat-intel matches…" /> : null}
      {state.data ? state.data.items.length ? <MatchTable items={state.data.items} /> : <p className="muted">No indicator of this {target.label} is in a threat alert.</p> : null}
    </section>
  );
}

const KINDS = ["ipv4", "ipv6", "domain", "url", "email", "md5", "sha1", "sha256", "cve"];
const PAGE = 25;

/** Every match of the company, filtered by record type and indicator kind. */
export default function MatchesPage() {
  const { scope } = useCompany();
  const [params, setParams] = useSearchParams();
  const recordType = params.get("record_type") ?? "";
  const kind = params.get("indicator_kind") ?? "";
  const offset = Number(params.get("offset") ?? 0);
  const state = useAsync(
    () => getJson<{ items: TiMatch[]; total: number }>("/tenant/ti-matches/", { ...scope, record_type: recordType, indicator_kind: kind, limit: PAGE, offset, sort: "-last_seen" }),
    [recordType, kind, offset, scope.company_id],
  );
  const summary = useAsync(() => getJson<Record<string, number>>("/tenant/ti-matches/summary/", scope), [scope.company_id]);
  const set = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    if (name !== "offset") next.delete("offset");
    setParams(next, { replace: true });
  };
  return (
    <>
      <PageHeader title="Threat-intel matches" />
      {summary.data ? (
        <div className="grid cards" role="group" aria-label="Open records with matches">
          <div className="card stat">
            <span className="label">Open offenses with matches</span>
            <Link className="value" to="/offenses?has_ti_match=true&status=OPEN">
              {summary.data.open_offenses_with_matches}
            </Link>
          </div>
          <div className="card stat">
            <span className="label">Open incidents with matches</span>
            <Link className="value" to="/incidents?has_ti_match=true">
              {summary.data.open_incidents_with_matches}
            </Link>
          </div>
          <div className="card stat">
            <span className="label">Open tickets with matches</span>
            <Link className="value" to="/tickets?has_ti_match=true">
              {summary.data.open_tickets_with_matches}
            </Link>
          </div>
          <div className="card stat">
            <span className="label">Alerts matched</span>
            <span className="value">{summary.data.alerts_matched}</span>
          </div>
        </div>
      ) : null}
      {summary.error ? <ErrorBox error={summary.error} onRetry={summary.reload} /> : null}
      <form className="filters" role="search" aria-label="Filter matches" onSubmit={(e) => e.preventDefault()}>
        <label>
          Record
          <select value={recordType} onChange={(e) => set("record_type", e.target.value)}>
            <option value="">Any</option>
            <option value="offense">Offenses</option>
            <option value="incident">Incidents</option>
            <option value="ticket">Tickets</option>
          </select>
        </label>
        <label>
          Indicator kind
          <select value={kind} onChange={(e) => set("indicator_kind", e.target.value)}>
            <option value="">Any</option>
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </label>
      </form>
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {state.loading && !state.data ? <Loading /> : null}
      {state.data ? (
        state.data.items.length ? (
          <>
            <p className="muted">
              <span data-testid="list-total">{state.data.total}</span> matches
            </p>
            <MatchTable items={state.data.items} withRecord />
            <nav className="pager" aria-label="Pages">
              <button type="button" disabled={offset === 0} onClick={() => set("offset", String(Math.max(0, offset - PAGE)))}>
                Previous
              </button>
              <span>
                {offset + 1}–{Math.min(offset + PAGE, state.data.total)} of {state.data.total}
              </span>
              <button type="button" disabled={offset + PAGE >= state.data.total} onClick={() => set("offset", String(offset + PAGE))}>
                Next
              </button>
            </nav>
          </>
        ) : (
          <Empty>No matches.</Empty>
        )
      ) : null}
    </>
  );
}
