import { useSearchParams } from "react-router-dom";
import { getJson } from "../../api/client";
import { useCompany } from "../../components/company";
import { formatDate, formatValue, humanLabel } from "../../components/format";
import { Empty, ErrorBox, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";

interface Window {
  family: string;
  domain_id: number;
  window_start: string;
  window_end: string;
  rows: Record<string, unknown>[];
}

export default function EventLogs() {
  const { scope } = useCompany();
  const [params, setParams] = useSearchParams();
  const families = useAsync(() => getJson<{ items: string[] }>("/tenant/event-logs/", scope), [scope.company_id]);
  const family = params.get("family") ?? families.data?.items[0] ?? "";
  const windows = useAsync(
    () => (family ? getJson<{ items: Window[] }>(`/tenant/event-logs/${family}/`, { ...scope, limit: 20 }) : Promise.resolve({ items: [] })),
    [family, scope.company_id],
  );
  const rows = (windows.data?.items ?? []).flatMap((w) => w.rows.map((row) => ({ window: w.window_start, ...row })));
  const columns = rows.length ? Object.keys(rows[0]) : [];
  return (
    <>
      <PageHeader title="Event logs" />
      {families.error ? <ErrorBox error={families.error} onRetry={families.reload} /> : null}
      <div className="filters">
        <label>
          Family
          <select value={family} onChange={(e) => setParams({ family: e.target.value }, { replace: true })}>
            {families.data?.items.map((f) => (
              <option key={f} value={f}>
                {humanLabel(f)}
              </option>
            ))}
          </select>
        </label>
      </div>
      {windows.error ? <ErrorBox error={windows.error} onRetry={windows.reload} /> : null}
      {windows.loading ? <Loading /> : null}
      {!windows.loading && rows.length === 0 ? <Empty>No events of this family collected yet.</Empty> : null}
      {rows.length ? (
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Events">
          <table>
            <thead>
              <tr>
                {columns.map((c) => (
                  <th key={c} scope="col">
                    {humanLabel(c)}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.slice(0, 200).map((row, i) => (
                <tr key={i}>
                  {columns.map((c) => (
                    <td key={c}>{c === "window" ? formatDate(row[c]) : formatValue((row as Record<string, unknown>)[c])}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </>
  );
}
