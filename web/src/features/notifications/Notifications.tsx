// In-app notifications: what the company's rules raised (SLA due/breached, new severe offenses and
// incidents, failing or silent integrations, EPS over contract, tickets), newest first; new ones
// arrive live on the socket. Reading is personal: marking read changes nobody else's list.
import { useState } from "react";
import { useSearchParams } from "react-router-dom";
import { ApiError, getJson, sendJson } from "../../api/client";
import type { components } from "../../api/schema";
import { useSession } from "../../auth/session";
import { useCompany } from "../../components/company";
import { formatDate } from "../../components/format";
import { useLiveFrames } from "../../components/live";
import { Empty, ErrorBox, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";
import { asError } from "../admin/forms";

type Notice = components["schemas"]["InAppNotice"];
type InAppPage = components["schemas"]["InAppPage"];

export const TRIGGER_LABELS: Record<string, string> = {
  sla_due_soon: "SLA due soon",
  sla_breached: "SLA breached",
  offense_created: "New offense",
  incident_created: "New incident",
  integration_error: "Integration failing",
  integration_silent: "Integration silent",
  eps_exceeded: "EPS over contract",
  ticket_created: "Ticket opened",
};
const PAGE = 25;

export default function Notifications() {
  const session = useSession();
  const { scope, companies, companyId } = useCompany();
  const [params, setParams] = useSearchParams();
  const unreadOnly = params.get("unread") === "true";
  // Admins: the MSSP staff's own notifications, or the selected company's.
  const staff = session.isAdmin && params.get("view") !== "company";
  const query = staff ? {} : scope;
  const offset = Number(params.get("offset") ?? 0);
  const state = useAsync(() => getJson<InAppPage>("/tenant/notifications/", { ...query, unread: unreadOnly || undefined, limit: PAGE, offset }), [unreadOnly, offset, staff, scope.company_id]);
  const [markError, setMarkError] = useState<ApiError | null>(null);
  const [fresh, setFresh] = useState(0);
  useLiveFrames("notification", (frame) => {
    if (frame.event !== "notification.posted") return;
    setFresh((n) => n + 1);
    state.reload();
  });
  const set = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    if (name !== "offset") next.delete("offset");
    setParams(next, { replace: true });
  };
  const mark = async (body: { ids?: number[]; all?: boolean }) => {
    setMarkError(null);
    try {
      await sendJson("POST", `/tenant/notifications/read/${staff || !scope.company_id ? "" : `?company_id=${scope.company_id}`}`, { ids: body.ids ?? [], all: Boolean(body.all) });
      state.reload();
    } catch (exc) {
      setMarkError(asError(exc));
    }
  };
  const companyName = companies.find((c) => c.id === companyId)?.name;
  return (
    <>
      <PageHeader title="Notifications">
        {state.data && state.data.unread > 0 ? (
          <button type="button" onClick={() => void mark({ all: true })}>
            Mark all read
          </button>
        ) : null}
      </PageHeader>
      <form className="filters" role="search" aria-label="Filter notifications" onSubmit={(e) => e.preventDefault()}>
        <label className="check">
          <input type="checkbox" checked={unreadOnly} onChange={(e) => set("unread", e.target.checked ? "true" : "")} />
          Unread only
        </label>
        {session.isAdmin ? (
          <label>
            Whose
            <select value={staff ? "staff" : "company"} onChange={(e) => set("view", e.target.value === "company" ? "company" : "")}>
              <option value="staff">The SOC staff's</option>
              <option value="company">{companyName ?? "The selected company"}'s</option>
            </select>
          </label>
        ) : null}
      </form>
      {markError ? <ErrorBox error={markError} /> : null}
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {state.loading && !state.data ? <Loading /> : null}
      {state.data ? (
        <>
          <p className="muted" aria-live="polite">
            <span data-testid="notifications-total">{state.data.total}</span> notifications, <span data-testid="notifications-unread-count">{state.data.unread}</span> unread
            {fresh ? ` · ${fresh} new since you opened this page` : ""}
          </p>
          {state.data.items.length === 0 ? (
            <Empty>No notifications.</Empty>
          ) : (
            <ol className="notice-list" data-testid="notifications">
              {state.data.items.map((n: Notice) => (
                <li key={n.id} className={`card notice-item severity-${n.severity}${n.read ? " read" : ""}`}>
                  <div className="notice-head">
                    <span className="tag">{TRIGGER_LABELS[n.trigger] ?? n.trigger}</span>
                    <strong>{n.title}</strong>
                    {n.read ? <span className="muted">read</span> : <span className="tag unread">unread</span>}
                  </div>
                  <p>{n.summary}</p>
                  <div className="muted">
                    {formatDate(n.at)} · {n.severity}
                    {!n.read ? (
                      <>
                        {" · "}
                        <button type="button" className="link" onClick={() => void mark({ ids: [n.id] })}>
                          Mark read<span className="skip-link"> “{n.title}”</span>
                        </button>
                      </>
                    ) : null}
                  </div>
                </li>
              ))}
            </ol>
          )}
          <nav className="pager" aria-label="Pages">
            <button type="button" disabled={offset === 0} onClick={() => set("offset", String(Math.max(0, offset - PAGE)))}>
              Previous
            </button>
            <span>
              {state.data.total ? offset + 1 : 0}–{Math.min(offset + PAGE, state.data.total)} of {state.data.total}
            </span>
            <button type="button" disabled={offset + PAGE >= state.data.total} onClick={() => set("offset", String(offset + PAGE))}>
              Next
            </button>
          </nav>
        </>
      ) : null}
    </>
  );
}
