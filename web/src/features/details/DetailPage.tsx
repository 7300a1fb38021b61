import { Link, useParams } from "react-router-dom";
import { getJson } from "../../api/client";
import { useCompany } from "../../components/company";
import { formatValue, humanLabel } from "../../components/format";
import { ErrorBox, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";
import { RecordActions } from "../actions/actions";
import { RecordMatches } from "../ti/matches";

type Row = Record<string, unknown>;

const KINDS: Record<string, { title: (r: Row) => string; path: string; back: string; backLabel: string }> = {
  offenses: { title: (r) => `Offense ${r.offense_id}`, path: "/tenant/offenses/", back: "/offenses", backLabel: "All offenses" },
  incidents: { title: (r) => `Incident ${r.incident_id}`, path: "/tenant/soar-incidents/", back: "/incidents", backLabel: "All incidents" },
  tickets: { title: (r) => `Ticket ${r.ticket_id}`, path: "/tenant/itsm-tickets/", back: "/tickets", backLabel: "All tickets" },
  "threat-alerts": { title: (r) => String(r.title ?? `Alert ${r.short_id}`), path: "/tenant/threat-alerts/", back: "/threat-alerts", backLabel: "All threat alerts" },
};

interface Page {
  items: Row[];
}

/** Offense → incidents (XSOAR incidents created for it) → tickets (SDP requests for an incident). */
function CrossReferences({ kind, record }: { kind: string; record: Row }) {
  const { scope } = useCompany();
  const refs = useAsync(async () => {
    const links: { to: string; label: string }[] = [];
    if (kind === "offenses") {
      const incidents = await getJson<Page>("/tenant/soar-incidents/", { ...scope, offense_id: record.offense_id, limit: 20 });
      for (const i of incidents.items) links.push({ to: `/incidents/${i.id}`, label: `Incident ${i.incident_id}` });
    }
    if (kind === "incidents") {
      for (const offenseId of (record.offense_ids as number[] | undefined) ?? []) {
        const offenses = await getJson<Page>("/tenant/offenses/", { ...scope, q: String(offenseId), limit: 50 });
        for (const o of offenses.items.filter((o) => o.offense_id === offenseId)) links.push({ to: `/offenses/${o.id}`, label: `Offense ${o.offense_id}` });
      }
      const tickets = await getJson<Page>("/tenant/itsm-tickets/", { ...scope, q: String(record.incident_id), limit: 50 });
      for (const t of tickets.items.filter((t) => t.soar_incident_id === record.incident_id)) links.push({ to: `/tickets/${t.id}`, label: `Ticket ${t.ticket_id}` });
    }
    if (kind === "tickets" && record.soar_incident_id) {
      const incidents = await getJson<Page>("/tenant/soar-incidents/", { ...scope, q: String(record.soar_incident_id), limit: 50 });
      for (const i of incidents.items.filter((i) => i.incident_id === record.soar_incident_id)) links.push({ to: `/incidents/${i.id}`, label: `Incident ${i.incident_id}` });
    }
    return links;
  }, [kind, String(record.id), scope.company_id]);
  if (kind === "threat-alerts") return null;
  return (
    <section aria-labelledby="xrefs-title" className="card">
      <h2 id="xrefs-title">Related</h2>
      {refs.loading ? <Loading label="Looking up related records…" /> : null}
      {refs.error ? <ErrorBox error={refs.error} onRetry={refs.reload} /> : null}
      {refs.data ? (
        refs.data.length ? (
          <ul className="xrefs" data-testid="xrefs">
            {refs.data.map((l) => (
              <li key={l.to}>
                <Link to={l.to}>{l.label}</Link>
              </li>
            ))}
          </ul>
        ) : (
          <p className="muted">No related records.</p>
        )
      ) : null}
    </section>
  );
}

export default function DetailPage({ kind }: { kind: string }) {
  const { id } = useParams();
  const { scope } = useCompany();
  const config = KINDS[kind];
  const state = useAsync(() => getJson<Row>(`${config.path}${encodeURIComponent(id ?? "")}/`, scope), [kind, id, scope.company_id]);
  if (state.loading && !state.data) return <Loading />;
  if (state.error) {
    return (
      <>
        <p>
          <Link to={config.back}>{config.backLabel}</Link>
        </p>
        <ErrorBox error={state.error} onRetry={state.error.status === 404 ? undefined : state.reload} />
      </>
    );
  }
  const record = state.data ?? {};
  const fields = Object.entries(record).filter(([key, value]) => !["integration_id", "version", "event_id", "ti_matches"].includes(key) && value !== null && !(Array.isArray(value) && value.length === 0));
  return (
    <>
      <p>
        <Link to={config.back}>{config.backLabel}</Link>
      </p>
      <PageHeader title={config.title(record)} />
      <div className="grid">
        <CrossReferences kind={kind} record={record} />
        <RecordActions kind={kind} record={record} />
        <RecordMatches kind={kind} id={String(record.id)} />
        <section className="card" aria-label="Fields">
          <dl className="fields">
            {fields.map(([key, value]) => (
              <div key={key} style={{ display: "contents" }}>
                <dt>{humanLabel(key)}</dt>
                <dd>{formatValue(value)}</dd>
              </div>
            ))}
          </dl>
        </section>
      </div>
    </>
  );
}
