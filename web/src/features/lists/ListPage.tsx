import { useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { ApiError, download, getJson } from "../../api/client";
import { useSession } from "../../auth/session";
import { useCompany } from "../../components/company";
import { ErrorBox, Empty, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";
import { LISTS, type ListKind, type Row } from "./config";
import EventLogs from "./EventLogs";

interface Page {
  items: Row[];
  total: number;
  limit: number;
  offset: number;
}

const PAGE_SIZE = 25;

function toIso(value: string, end: boolean): string {
  // Date inputs give a day; the API takes an instant (naive = UTC).
  return end ? `${value}T23:59:59` : `${value}T00:00:00`;
}

export function query(kind: ListKind, params: URLSearchParams): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const filter of kind.filters) {
    const value = params.get(filter.name);
    if (!value) continue;
    if (filter.type === "date") out[filter.name] = toIso(value, filter.name === "to");
    else out[filter.name] = value;
  }
  const sort = params.get("sort") ?? kind.defaultSort;
  if (sort) out.sort = sort;
  return out;
}

function Table({ kind, kindName }: { kind: ListKind; kindName: string }) {
  const session = useSession();
  const { scope } = useCompany();
  const [params, setParams] = useSearchParams();
  const [downloadError, setDownloadError] = useState<ApiError | null>(null);
  const offset = Number(params.get("offset") ?? 0);
  const filters = query(kind, params);
  const state = useAsync(
    () => getJson<Page>(kind.path, { ...filters, ...scope, limit: PAGE_SIZE, offset }),
    [kind.path, params.toString(), scope.company_id],
  );

  const set = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    if (name !== "offset") next.delete("offset");
    setParams(next, { replace: true });
  };
  const sortBy = (field: string) => set("sort", params.get("sort") === field ? `-${field}` : field);
  const save = async (format: "csv" | "xlsx") => {
    setDownloadError(null);
    try {
      if (format === "csv") await download(kind.path, { ...filters, ...scope, format: "csv", limit: 500 }, `${kindName}.csv`);
      else if (kind.xlsx) await download(kind.xlsx.path, { ...filters, ...scope, [kind.xlsx.param]: "xlsx" }, `${kindName}.xlsx`);
    } catch (exc) {
      setDownloadError(exc instanceof ApiError ? exc : new ApiError(0, "client_error", String(exc), null));
    }
  };
  const canDownload = session.can("REPORTS");

  return (
    <>
      <PageHeader title={kind.title}>
        {canDownload && kind.csv ? (
          <button type="button" onClick={() => void save("csv")}>
            Download CSV
          </button>
        ) : null}
        {canDownload && kind.xlsx ? (
          <button type="button" onClick={() => void save("xlsx")}>
            Download XLSX
          </button>
        ) : null}
      </PageHeader>
      <form className="filters" role="search" aria-label={`Filter ${kind.title.toLowerCase()}`} onSubmit={(e) => e.preventDefault()}>
        {kind.filters.map((filter) => (
          <label key={filter.name}>
            {filter.label}
            {filter.type === "select" ? (
              <select name={filter.name} value={params.get(filter.name) ?? ""} onChange={(e) => set(filter.name, e.target.value)}>
                <option value="">Any</option>
                {filter.options?.map((o) => (
                  <option key={o} value={o}>
                    {o}
                  </option>
                ))}
              </select>
            ) : filter.type === "boolean" ? (
              <input type="checkbox" name={filter.name} checked={params.get(filter.name) === "true"} onChange={(e) => set(filter.name, e.target.checked ? "true" : "")} />
            ) : (
              <input
                name={filter.name}
                type={filter.type === "date" ? "date" : "search"}
                defaultValue={params.get(filter.name) ?? ""}
                onChange={filter.type === "date" ? (e) => set(filter.name, e.target.value) : undefined}
                onKeyDown={filter.type === "text" ? (e) => e.key === "Enter" && set(filter.name, e.currentTarget.value) : undefined}
                onBlur={filter.type === "text" ? (e) => set(filter.name, e.currentTarget.value) : undefined}
              />
            )}
          </label>
        ))}
      </form>
      {downloadError ? <ErrorBox error={downloadError} /> : null}
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {state.loading && !state.data ? <Loading /> : null}
      {state.data ? (
        <>
          <p className="muted" aria-live="polite">
            <span data-testid="list-total">{state.data.total}</span> {kind.title.toLowerCase()}
            {state.loading ? " · updating…" : ""}
          </p>
          {state.data.items.length === 0 ? (
            <Empty>Nothing matches these filters.</Empty>
          ) : (
            <div className="table-wrap" tabIndex={0} role="region" aria-label={kind.title}>
              <table>
                <caption className="skip-link">{kind.title}</caption>
                <thead>
                  <tr>
                    {kind.columns.map((col) => {
                      const sort = params.get("sort");
                      const dir = sort === col.sort ? "ascending" : sort === `-${col.sort}` ? "descending" : undefined;
                      return (
                        <th key={col.key} scope="col" aria-sort={dir ?? "none"}>
                          {col.sort ? (
                            <button type="button" onClick={() => sortBy(col.sort!)}>
                              {col.label}
                              {dir === "ascending" ? " ▲" : dir === "descending" ? " ▼" : ""}
                            </button>
                          ) : (
                            col.label
                          )}
                        </th>
                      );
                    })}
                  </tr>
                </thead>
                <tbody>
                  {state.data.items.map((row) => (
                    <tr key={String(row.id)}>
                      {kind.columns.map((col, i) => {
                        const text = col.render ? col.render(row) : String(row[col.key] ?? "—");
                        return <td key={col.key}>{i === 0 && kind.detail ? <Link to={`${kind.detail}/${String(row.id)}`}>{text}</Link> : text}</td>;
                      })}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <nav className="pager" aria-label="Pages">
            <button type="button" disabled={offset === 0} onClick={() => set("offset", String(Math.max(0, offset - PAGE_SIZE)))}>
              Previous
            </button>
            <span>
              {state.data.total ? offset + 1 : 0}–{Math.min(offset + PAGE_SIZE, state.data.total)} of {state.data.total}
            </span>
            <button type="button" disabled={offset + PAGE_SIZE >= state.data.total} onClick={() => set("offset", String(offset + PAGE_SIZE))}>
              Next
            </button>
          </nav>
        </>
      ) : null}
    </>
  );
}

export default function ListPage({ kind }: { kind: string }) {
  if (kind === "event-logs") return <EventLogs />;
  const config = LISTS[kind];
  // A new key per kind: the list's state starts fresh when the route changes kind.
  return <Table key={kind} kind={config} kindName={kind} />;
}
