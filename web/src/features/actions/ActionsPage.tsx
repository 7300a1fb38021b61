import { Link, useSearchParams } from "react-router-dom";
import { getJson } from "../../api/client";
import { formatDate } from "../../components/format";
import { useLiveFrames } from "../../components/live";
import { Empty, ErrorBox, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";
import { ACTION_LABELS, describeOutcome, type VendorAction } from "./actions";

const TARGETS: Record<string, string> = { offense: "/offenses", incident: "/incidents", ticket: "/tickets" };
const PAGE = 25;

/** The actions the person asked for (admins: everyone's), with their outcomes. */
export default function ActionsPage() {
  const [params, setParams] = useSearchParams();
  const status = params.get("status") ?? "";
  const offset = Number(params.get("offset") ?? 0);
  const state = useAsync(() => getJson<{ items: VendorAction[]; total: number }>("/tenant/actions/", { status, limit: PAGE, offset }), [status, offset]);
  useLiveFrames("action.outcome", () => state.reload());
  const set = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    if (name !== "offset") next.delete("offset");
    setParams(next, { replace: true });
  };
  return (
    <>
      <PageHeader title="Vendor actions" />
      <form className="filters" role="search" aria-label="Filter actions" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select value={status} onChange={(e) => set("status", e.target.value)}>
            <option value="">Any</option>
            <option value="accepted">waiting</option>
            <option value="succeeded">succeeded</option>
            <option value="failed">failed</option>
          </select>
        </label>
      </form>
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {state.loading && !state.data ? <Loading /> : null}
      {state.data && !state.data.items.length ? <Empty>No actions.</Empty> : null}
      {state.data?.items.length ? (
        <>
          <div className="table-wrap" tabIndex={0} role="region" aria-label="Vendor actions">
            <table>
              <thead>
                <tr>
                  <th scope="col">Action</th>
                  <th scope="col">On</th>
                  <th scope="col">Status</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">Asked by</th>
                  <th scope="col">Asked at</th>
                </tr>
              </thead>
              <tbody>
                {state.data.items.map((a) => (
                  <tr key={a.id}>
                    <td>{ACTION_LABELS[a.action] ?? a.action}</td>
                    <td>
                      <Link to={`${TARGETS[a.target_type] ?? "/"}/${a.target_id}`}>
                        {a.target_type} {a.target_id}
                      </Link>
                    </td>
                    <td>
                      <span className={`tag status-${a.status}`}>{a.status === "accepted" ? "waiting" : a.status}</span>
                    </td>
                    <td>{describeOutcome(a)}</td>
                    <td>{a.requested_by_name ?? a.requested_by}</td>
                    <td>{formatDate(a.requested_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
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
      ) : null}
    </>
  );
}
