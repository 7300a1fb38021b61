import { useState, type FormEvent } from "react";
import { ApiError, download } from "../../api/client";
import { useCompany } from "../../components/company";
import { ErrorBox, PageHeader } from "../../components/States";

const KINDS = [
  ["consolidated", "Consolidated SOC report"],
  ["incident", "Incident summary"],
  ["detailed-incident", "Detailed incidents"],
  ["eps", "EPS and contracted volume"],
  ["assets", "Assets and log sources"],
] as const;

function isoDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

export default function Reports() {
  const { scope } = useCompany();
  const [kind, setKind] = useState<string>("consolidated");
  const [from, setFrom] = useState(isoDay(new Date(Date.now() - 30 * 86_400_000)));
  const [to, setTo] = useState(isoDay(new Date()));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState<string | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      await download(`/tenant/reports/${kind}/`, { ...scope, format: "pdf", from: `${from}T00:00:00`, to: `${to}T23:59:59` }, `${kind}-report.pdf`);
      setDone(`The ${kind} report for ${from} to ${to} has been downloaded.`);
    } catch (exc) {
      setError(exc instanceof ApiError ? exc : new ApiError(0, "client_error", String(exc), null));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <PageHeader title="Reports" />
      <form className="card inline" onSubmit={submit} aria-label="Report options">
        <label>
          Report
          <select aria-label="Report" value={kind} onChange={(e) => setKind(e.target.value)}>
            {KINDS.map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input type="date" value={from} max={to} onChange={(e) => setFrom(e.target.value)} required />
        </label>
        <label>
          To
          <input type="date" value={to} min={from} onChange={(e) => setTo(e.target.value)} required />
        </label>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Rendering…" : "Download PDF"}
        </button>
      </form>
      {error ? <ErrorBox error={error} /> : null}
      {done ? (
        <p className="notice" role="status">
          {done}
        </p>
      ) : null}
    </>
  );
}
