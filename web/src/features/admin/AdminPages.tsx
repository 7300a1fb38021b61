import { useState, type FormEvent, type ReactNode } from "react";
import { useParams } from "react-router-dom";
import { ApiError, getJson, sendJson } from "../../api/client";
import { useSession } from "../../auth/session";
import { formatDate, formatValue } from "../../components/format";
import { Empty, ErrorBox, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";
import { useCompany } from "../../components/company";
import { ConfirmButton } from "../../components/Confirm";
import { compact, EntityForm, Field, fieldErrors, type FieldSpec, type Option, type Values } from "./forms";

type Row = Record<string, unknown>;
interface Page {
  items: Row[];
  total: number;
}
interface Column {
  key: string;
  label: string;
  render?: (row: Row) => ReactNode;
}

function asError(exc: unknown): ApiError {
  return exc instanceof ApiError ? exc : new ApiError(0, "client_error", String(exc), null);
}

/** Runs one mutating call and keeps its outcome for the page to show. */
function useAction() {
  const [error, setError] = useState<ApiError | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async (work: () => Promise<string | void>, after?: () => void) => {
    setBusy(true);
    setError(null);
    setMessage(null);
    try {
      const text = await work();
      if (text) setMessage(text);
      after?.();
    } catch (exc) {
      setError(asError(exc));
    } finally {
      setBusy(false);
    }
  };
  const outcome = (
    <>
      {error ? <ErrorBox error={error} /> : null}
      {message ? (
        <p className="notice" role="status">
          {message}
        </p>
      ) : null}
    </>
  );
  return { run, busy, outcome, error };
}

function Table({ rows, columns, actions, label }: { rows: Row[]; columns: Column[]; actions?: (row: Row) => ReactNode; label: string }) {
  if (!rows.length) return <Empty>Nothing here yet.</Empty>;
  return (
    <div className="table-wrap" tabIndex={0} role="region" aria-label={label}>
      <table aria-label={label}>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.key} scope="col">
                {c.label}
              </th>
            ))}
            {actions ? <th scope="col">Actions</th> : null}
          </tr>
        </thead>
        <tbody>
          {rows.map((row, i) => (
            <tr key={String(row.id ?? i)}>
              {columns.map((c) => (
                <td key={c.key}>{c.render ? c.render(row) : formatValue(row[c.key])}</td>
              ))}
              {actions ? (
                <td>
                  <div className="row-actions">{actions(row)}</div>
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Listing({ path, query = {}, version = 0, columns, actions, label, children }: { path: string; query?: Record<string, unknown>; version?: number; columns: Column[]; actions?: (row: Row, reload: () => void) => ReactNode; label: string; children?: (reload: () => void) => ReactNode }) {
  const state = useAsync(() => getJson<Page>(path, { limit: 200, ...query }), [path, JSON.stringify(query), version]);
  return (
    <>
      {children?.(state.reload)}
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {state.loading && !state.data ? <Loading /> : null}
      {state.data ? <Table rows={state.data.items} columns={columns} label={label} actions={actions ? (row) => actions(row, state.reload) : undefined} /> : null}
    </>
  );
}

function Companies() {
  const { readOnly } = useSession();
  const action = useAction();
  const [name, setName] = useState("");
  const [country, setCountry] = useState("");
  const [editing, setEditing] = useState<Row | null>(null);
  const [tick, setTick] = useState(0);
  return (
    <>
      <PageHeader title="Companies" />
      {action.outcome}
      {editing && !readOnly ? (
        <EntityForm
          key={String(editing.id)}
          title={`Edit ${String(editing.name)}`}
          initial={{ name: editing.name ?? "", industry: editing.industry ?? "", country: editing.country ?? "", phone_number: editing.phone_number ?? "" }}
          fields={[
            { name: "name", label: "Company name", required: true, minLength: 2, maxLength: 255 },
            { name: "industry", label: "Industry", maxLength: 255 },
            { name: "country", label: "Country", maxLength: 255 },
            { name: "phone_number", label: "Phone number", maxLength: 50 },
          ]}
          submitLabel="Save company"
          onCancel={() => setEditing(null)}
          onSubmit={async (values) => {
            const body = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v === "" ? null : v]));
            await sendJson("PUT", `/admin/companies/${editing.id}/`, body);
            setEditing(null);
            setTick((t) => t + 1);
            void action.run(async () => `${String(values.name)} saved.`);
          }}
        />
      ) : null}
      <Listing
        path="/admin/companies/"
        query={{ status: "current" }}
        version={tick}
        label="Companies"
        columns={[
          { key: "name", label: "Name" },
          { key: "status", label: "Status" },
          { key: "industry", label: "Industry" },
          { key: "country", label: "Country" },
          { key: "created_at", label: "Created", render: (r) => formatDate(r.created_at) },
        ]}
        actions={
          readOnly
            ? undefined
            : (row, reload) => (
                <>
                  <button type="button" aria-label={`Edit ${String(row.name)}`} onClick={() => setEditing(row)}>
                    Edit
                  </button>
                  {row.status === "active" ? (
                    <button type="button" className="danger" disabled={action.busy} onClick={() => void action.run(() => sendJson("POST", `/admin/tenants/${row.id}/inactivate/`).then(() => `${row.name} is inactive.`), reload)}>
                      Inactivate
                    </button>
                  ) : (
                    <button type="button" disabled={action.busy} onClick={() => void action.run(() => sendJson("POST", `/admin/tenants/${row.id}/reactivate/`).then(() => `${row.name} is active again.`), reload)}>
                      Reactivate
                    </button>
                  )}
                </>
              )
        }
      >
        {(reload) =>
          readOnly ? null : (
            <form
              className="card inline"
              aria-label="New company"
              onSubmit={(e: FormEvent) => {
                e.preventDefault();
                void action.run(
                  () => sendJson("POST", "/admin/tenants/", { company: { name, country: country || null } }).then(() => `Created ${name}.`),
                  () => {
                    setName("");
                    setCountry("");
                    reload();
                  },
                );
              }}
              style={{ marginBottom: "1rem" }}
            >
              <label>
                Company name
                <input value={name} onChange={(e) => setName(e.target.value)} required minLength={2} />
              </label>
              <label>
                Country
                <input value={country} onChange={(e) => setCountry(e.target.value)} />
              </label>
              <button type="submit" className="primary" disabled={action.busy}>
                Create company
              </button>
            </form>
          )
        }
      </Listing>
    </>
  );
}

interface Choice {
  value: string;
  label: string;
}
interface CredentialField {
  name: string;
  label: string;
  secret: boolean;
  required: boolean;
}
interface CredentialKind {
  kind: string;
  label: string;
  fields: CredentialField[];
}
interface Subtype {
  subtype: string;
  label: string;
  requires_company: boolean;
  credential_kinds: CredentialKind[];
}
interface ConnectionTest {
  ok: boolean;
  category?: string | null;
  message: string;
  hint?: string | null;
}

function useChoices(path: string): Option[] {
  const state = useAsync(() => getJson<{ items: Choice[] }>(path, { limit: 500 }), [path]);
  return (state.data?.items ?? []).map((c) => ({ value: String(c.value), label: String(c.label ?? c.value) }));
}

function useCompanyOptions(): Option[] {
  const { companies } = useCompany();
  return companies.map((c) => ({ value: c.id, label: c.name }));
}

/** A connection test's categorised answer, as the admin reads it. */
function describeTest(name: string, result: ConnectionTest): string {
  const verdict = result.ok ? "connected" : `failed [${result.category ?? "unknown"}]`;
  return `${name}: ${verdict} — ${result.message}${result.hint ? ` (${result.hint})` : ""}`;
}

function credentialFields(kind: CredentialKind | undefined, required: boolean): FieldSpec[] {
  return (kind?.fields ?? []).map((f) => ({
    name: `credentials.${f.name}`,
    label: f.label,
    type: f.secret ? "password" : "text",
    required: required && f.required,
  }));
}

/** The form's flat values -> the API's body (credentials.<field> become one object). */
function integrationBody(values: Values): Values {
  const body: Values = {};
  const credentials: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) {
    if (key.startsWith("credentials.")) {
      if (value !== "" && value !== undefined) credentials[key.slice("credentials.".length)] = value;
    } else if (value !== "" && value !== undefined && value !== null) body[key] = value;
  }
  if (Object.keys(credentials).length) body.credentials = credentials;
  return body;
}

function IntegrationForm({ row, onDone, onCancel }: { row?: Row; onDone: (message: string) => void; onCancel: () => void }) {
  const types = useAsync(() => getJson<{ items: { subtypes: Subtype[] }[] }>("/integration/types/"), []);
  const companies = useCompanyOptions();
  const [tested, setTested] = useState<string | null>(null);
  if (types.error) return <ErrorBox error={types.error} onRetry={types.reload} />;
  if (!types.data) return <Loading />;
  const subtypes = types.data.items.flatMap((t) => t.subtypes);
  const find = (values: Values) => subtypes.find((s) => s.subtype === (values.subtype ?? row?.subtype));
  const kindOf = (values: Values) => {
    const spec = find(values);
    return spec?.credential_kinds.find((k) => k.kind === values.credential_kind) ?? spec?.credential_kinds[0];
  };
  const fields = (values: Values): FieldSpec[] => {
    const spec = find(values);
    const kind = kindOf(values);
    const common: FieldSpec[] = [
      { name: "instance_name", label: "Name", required: true, maxLength: 100 },
      { name: "base_url", label: "Base URL", type: "url", required: true, placeholder: "https://siem.example.com" },
      { name: "polling_interval_seconds", label: "Polling interval (seconds)", type: "number", min: 30, max: 86400 },
      { name: "verify_tls", label: "Verify the TLS certificate", type: "checkbox" },
    ];
    if (spec?.requires_company || row?.company_id) common.push({ name: "company_id", label: "Company", type: "select", options: companies, required: Boolean(spec?.requires_company) });
    const kinds: FieldSpec[] =
      spec && spec.credential_kinds.length > 1
        ? [{ name: "credential_kind", label: "Credentials", type: "select", required: true, options: spec.credential_kinds.map((k) => ({ value: k.kind, label: k.label })) }]
        : [];
    if (row) {
      return [...common, { name: "enabled", label: "Enabled (polled)", type: "checkbox" }, ...kinds, ...credentialFields(kind, false).map((f) => ({ ...f, hint: "leave empty to keep the stored value" }))];
    }
    return [{ name: "subtype", label: "Product", type: "select", required: true, options: subtypes.map((s) => ({ value: s.subtype, label: s.label })) }, ...common, ...kinds, ...credentialFields(kind, true)];
  };
  const initial: Values = row
    ? { instance_name: row.instance_name, base_url: row.base_url, polling_interval_seconds: row.polling_interval_seconds, verify_tls: row.verify_tls, company_id: row.company_id ?? "", enabled: row.status !== "disabled", credential_kind: row.credential_kind }
    : { subtype: subtypes[0]?.subtype, verify_tls: true, polling_interval_seconds: 300 };
  return (
    <>
      {tested ? (
        <p className="notice" role="status" data-testid="draft-test">
          {tested}
        </p>
      ) : null}
      <EntityForm
        title={row ? `Edit ${String(row.instance_name)}` : "New integration"}
        fields={fields}
        initial={initial}
        submitLabel={row ? "Save integration" : "Create integration"}
        onCancel={onCancel}
        onSubmit={async (values) => {
          const body = integrationBody(values);
          if (row) {
            if (!body.credentials) delete body.credential_kind;
            await sendJson("PUT", `/integration/${row.id}/`, body);
            onDone(`${String(values.instance_name)} saved.`);
          } else {
            body.credential_kind ??= kindOf(values)?.kind;
            body.credentials ??= {};
            await sendJson("POST", "/integration/", body);
            onDone(`${String(values.instance_name)} created.`);
          }
        }}
        extra={
          row
            ? undefined
            : (values, run, busy) => (
                <button
                  type="button"
                  disabled={busy}
                  onClick={() =>
                    run(async () => {
                      setTested(null);
                      const body = integrationBody(values);
                      body.credential_kind ??= kindOf(values)?.kind;
                      const result = await sendJson<ConnectionTest>("POST", "/integration/test-connection/", body);
                      setTested(describeTest(String(values.instance_name || "The draft"), result));
                    })
                  }
                >
                  Test before saving
                </button>
              )
        }
      />
    </>
  );
}

function Integrations() {
  const { readOnly } = useSession();
  const action = useAction();
  const [editing, setEditing] = useState<Row | "new" | null>(null);
  const [tick, setTick] = useState(0);
  const syncSummary = (row: Row) => {
    const sync = (row.sync as Row[] | undefined) ?? [];
    if (!sync.length) return "never";
    const failed = sync.filter((s) => s.outcome !== "ok");
    const last = sync.map((s) => String(s.finished_at ?? "")).sort().pop();
    const records = sync.reduce((n, s) => n + Number(s.records ?? 0), 0);
    return `${failed.length ? `${failed.length} failing (${failed.map((f) => f.error_category ?? f.resource).join(", ")})` : "ok"} · ${records} records · ${formatDate(last)}`;
  };
  const done = (message: string) => {
    setEditing(null);
    setTick((t) => t + 1);
    action.run(async () => message);
  };
  return (
    <>
      <PageHeader title="Integrations">
        {readOnly || editing ? null : (
          <button type="button" className="primary" onClick={() => setEditing("new")}>
            New integration
          </button>
        )}
      </PageHeader>
      {action.outcome}
      {editing ? <IntegrationForm key={editing === "new" ? "new" : String(editing.id)} row={editing === "new" ? undefined : editing} onDone={done} onCancel={() => setEditing(null)} /> : null}
      <Listing
        path="/integration/"
        version={tick}
        label="Integrations"
        columns={[
          { key: "instance_name", label: "Name" },
          { key: "subtype", label: "Product" },
          { key: "base_url", label: "URL" },
          { key: "status", label: "Status" },
          { key: "last_test", label: "Last test", render: (r) => ((r.last_test as Row | null)?.message as string) ?? "—" },
          { key: "sync", label: "Sync health", render: syncSummary },
        ]}
        actions={
          readOnly
            ? undefined
            : (row, reload) => (
                <>
                  <button type="button" onClick={() => setEditing(row)}>
                    Edit
                  </button>
                  <button type="button" disabled={action.busy} onClick={() => void action.run(async () => describeTest(String(row.instance_name), await sendJson<ConnectionTest>("POST", `/integration/${row.id}/test-connection/`)), reload)}>
                    Test connection
                  </button>
                  <button type="button" disabled={action.busy} onClick={() => void action.run(() => sendJson("POST", `/admin/integrations/${row.id}/sync-now/`).then(() => `${row.instance_name}: sync requested.`), reload)}>
                    Sync now
                  </button>
                  <ConfirmButton
                    label="Delete"
                    question={`Delete the integration ${String(row.instance_name)}? Its mappings stop and its sync ends.`}
                    disabled={action.busy}
                    onConfirm={() => action.run(() => sendJson("DELETE", `/integration/${row.id}/`).then(() => `${row.instance_name} deleted.`), reload)}
                  />
                </>
              )
        }
      />
    </>
  );
}

const MAPPING_KINDS = {
  qradar: { title: "QRadar domains", key: "domain_id", label: "Domain id", subtype: "IBM_QRADAR" },
  soar: { title: "XSOAR accounts", key: "account", label: "Account", subtype: "CORTEX_XSOAR" },
  itsm: { title: "ServiceDesk Plus accounts", key: "account_id", label: "Account", subtype: "MANAGEENGINE_SDP" },
} as const;
type MappingKind = keyof typeof MAPPING_KINDS;

function MappingSection({ kind, integrations }: { kind: MappingKind; integrations: Row[] }) {
  const { readOnly } = useSession();
  const companies = useCompanyOptions();
  const action = useAction();
  const [adding, setAdding] = useState(false);
  const [editing, setEditing] = useState<Row | null>(null);
  const [tick, setTick] = useState(0);
  const spec = MAPPING_KINDS[kind];
  const volumeTypes = [
    { value: "EPS", label: "Events per second" },
    { value: "GB_PER_DAY", label: "GB per day" },
  ];
  const done = (message: string) => {
    setAdding(false);
    setEditing(null);
    setTick((t) => t + 1);
    action.run(async () => message);
  };
  const columns: Column[] = [
    { key: "company_name", label: "Company" },
    { key: "integration_name", label: "Integration" },
    kind === "qradar" ? { key: "domain_name", label: "Domain", render: (r) => `${formatValue(r.domain_name)} (${formatValue(r.domain_id)})` } : { key: spec.key, label: spec.label },
    ...(kind === "qradar" ? [{ key: "contracted_volume", label: "Contracted", render: (r: Row) => `${formatValue(Number(r.contracted_volume))} ${r.contracted_volume_type ?? ""}` }] : []),
    { key: "active", label: "Active" },
  ];
  return (
    <section aria-label={spec.title} style={{ marginBottom: "1.5rem" }}>
      <div className="page-header">
        <h2>{spec.title}</h2>
        {readOnly || adding ? null : (
          <button type="button" onClick={() => setAdding(true)}>
            Add {spec.title.replace(/s$/, "").replace("accounts", "account")} mapping
          </button>
        )}
      </div>
      {action.outcome}
      {adding ? (
        <EntityForm
          title={`New ${spec.title} mapping`}
          initial={{ contracted_volume_type: "EPS", company_id: companies[0]?.value, integration_id: integrations.find((i) => i.subtype === spec.subtype)?.id }}
          fields={[
            { name: "company_id", label: "Company", type: "select", required: true, options: companies },
            { name: "integration_id", label: "Integration", type: "select", required: true, options: integrations.filter((i) => i.subtype === spec.subtype).map((i) => ({ value: String(i.id), label: String(i.instance_name) })) },
            kind === "qradar" ? { name: "domain_id", label: "Domain id", type: "number", required: true, min: 0 } : { name: spec.key, label: spec.label, required: true },
            ...(kind === "qradar"
              ? ([
                  { name: "contracted_volume_type", label: "Volume type", type: "select", required: true, options: volumeTypes },
                  { name: "contracted_volume", label: "Contracted volume", type: "number", min: 0 },
                ] as FieldSpec[])
              : []),
          ]}
          submitLabel="Create mapping"
          onCancel={() => setAdding(false)}
          onSubmit={async (values) => {
            await sendJson("POST", `/admin/mappings/${kind}/`, compact(values));
            done("Mapping created.");
          }}
        />
      ) : null}
      {editing ? (
        <EntityForm
          title="Edit mapping"
          initial={{ contracted_volume_type: editing.contracted_volume_type, contracted_volume: Number(editing.contracted_volume), active: editing.active }}
          fields={[
            ...(kind === "qradar"
              ? ([
                  { name: "contracted_volume_type", label: "Volume type", type: "select", required: true, options: volumeTypes },
                  { name: "contracted_volume", label: "Contracted volume", type: "number", min: 0 },
                ] as FieldSpec[])
              : []),
            { name: "active", label: "Active", type: "checkbox" },
          ]}
          submitLabel="Save mapping"
          onCancel={() => setEditing(null)}
          onSubmit={async (values) => {
            await sendJson("PUT", `/admin/mappings/${kind}/${editing.id}/`, kind === "qradar" ? values : { active: values.active });
            done("Mapping saved.");
          }}
        />
      ) : null}
      <Listing
        path={`/admin/mappings/${kind}/`}
        version={tick}
        label={`${spec.title} mappings`}
        columns={columns}
        actions={
          readOnly
            ? undefined
            : (row, reload) => (
                <>
                  <button type="button" onClick={() => setEditing(row)}>
                    Edit
                  </button>
                  <ConfirmButton
                    label="Delete"
                    question={`Delete the mapping of ${String(row.company_name ?? "the company")} to ${String(row.integration_name ?? "the integration")} (${formatValue(row[spec.key])})?`}
                    disabled={action.busy}
                    onConfirm={() => action.run(() => sendJson("DELETE", `/admin/mappings/${kind}/${row.id}/`).then(() => "Mapping deleted."), reload)}
                  />
                </>
              )
        }
      />
    </section>
  );
}

function Mappings() {
  const integrations = useAsync(() => getJson<Page>("/integration/", { limit: 200 }), []);
  return (
    <>
      <PageHeader title="Mappings and contracted volumes" />
      {integrations.error ? <ErrorBox error={integrations.error} onRetry={integrations.reload} /> : null}
      {(Object.keys(MAPPING_KINDS) as MappingKind[]).map((kind) => (
        <MappingSection key={kind} kind={kind} integrations={integrations.data?.items ?? []} />
      ))}
    </>
  );
}

const SLA_STEPS = [
  ["tta_minutes", "Acknowledge (minutes)"],
  ["ttn_minutes", "Notify (minutes)"],
  ["ttdn_minutes", "Resolve (minutes)"],
] as const;

function SlaDefaults() {
  const { readOnly } = useSession();
  const state = useAsync(() => getJson<Page>("/admin/sla/defaults/"), []);
  const action = useAction();
  const [edits, setEdits] = useState<Record<string, Record<string, number>>>({});
  const value = (row: Row, key: string) => edits[String(row.level)]?.[key] ?? Number(row[key]);
  return (
    <section aria-labelledby="sla-defaults">
      <h2 id="sla-defaults">Defaults</h2>
      <p className="muted">Companies without their own SLA use these targets.</p>
      {action.outcome}
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {state.data ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            const items = state.data!.items.map((row) => ({ level: row.level, ...Object.fromEntries(SLA_STEPS.map(([k]) => [k, value(row, k)])) }));
            void action.run(() => sendJson("PUT", "/admin/sla/defaults/", { items }).then(() => "SLA defaults saved."), state.reload);
          }}
          noValidate
        >
          <Table
            rows={state.data.items}
            label="SLA defaults"
            columns={[
              { key: "level", label: "Priority" },
              ...SLA_STEPS.map(([key, label]) => ({
                key,
                label,
                render: (row: Row) =>
                  readOnly ? (
                    formatValue(row[key])
                  ) : (
                    <input
                      type="number"
                      min={1}
                      aria-label={`${row.level} ${label}`}
                      value={value(row, key)}
                      onChange={(e) => setEdits((all) => ({ ...all, [String(row.level)]: { ...all[String(row.level)], [key]: Number(e.target.value) } }))}
                    />
                  ),
              })),
            ]}
          />
          {readOnly ? null : (
            <p>
              <button type="submit" className="primary" disabled={action.busy}>
                Save SLA defaults
              </button>
            </p>
          )}
        </form>
      ) : null}
    </section>
  );
}

interface CompanySla {
  is_default_sla: boolean;
  sla_clock_start: string;
  overrides: Row[];
  effective: Record<string, { tta_minutes: number; ttn_minutes: number; ttdn_minutes: number; source: string }>;
}

function SlaOverrides() {
  const { readOnly } = useSession();
  const { companyId, companies } = useCompany();
  const company = companies.find((c) => c.id === companyId);
  const state = useAsync(() => (companyId ? getJson<CompanySla>(`/admin/companies/${companyId}/sla/`) : Promise.resolve(undefined)), [companyId]);
  const action = useAction();
  const [draft, setDraft] = useState<Record<string, Record<string, number | "">> | null>(null);
  const [ownSla, setOwnSla] = useState<boolean | null>(null);
  const error = action.error;
  const errors = fieldErrors(error);
  if (!companyId) return <Empty>Choose a company to set its SLA.</Empty>;
  const data = state.data;
  const levels = data ? Object.keys(data.effective) : [];
  const companyLevel = (level: string) => data?.overrides.find((o) => o.level === level && !o.integration_id && !o.account);
  const current = (level: string, key: string): number | "" => {
    const edited = draft?.[level]?.[key];
    if (edited !== undefined) return edited;
    const own = companyLevel(level);
    return own ? Number(own[key]) : "";
  };
  const isOwn = ownSla ?? (data ? !data.is_default_sla : false);
  return (
    <section aria-labelledby="sla-company">
      <h2 id="sla-company">{company?.name ?? "Company"}: its own SLA</h2>
      <p className="muted">Switch company at the top. Empty cells keep the default for that step; overrides for one integration or account are kept as they are.</p>
      {action.outcome}
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {!data && !state.error ? <Loading /> : null}
      {data ? (
        <form
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            const keep = (overrides: Row[]) => overrides.filter((o) => o.integration_id || o.account).map((o) => ({ level: o.level, tta_minutes: o.tta_minutes, ttn_minutes: o.ttn_minutes, ttdn_minutes: o.ttdn_minutes, integration_id: o.integration_id, account: o.account }));
            const own = levels
              .filter((level) => SLA_STEPS.some(([k]) => current(level, k) !== ""))
              .map((level) => ({ level, ...Object.fromEntries(SLA_STEPS.map(([k]) => [k, current(level, k) === "" ? data.effective[level][k as "tta_minutes"] : current(level, k)])) }));
            void action.run(
              // The integration and account overrides as they are now (the section below may have changed them).
              async () => {
                const fresh = await getJson<CompanySla>(`/admin/companies/${companyId}/sla/`);
                await sendJson("PUT", `/admin/companies/${companyId}/sla/`, { is_default_sla: !isOwn, overrides: [...keep(fresh.overrides), ...own] });
                return `${company?.name ?? "The company"}'s SLA saved.`;
              },
              () => {
                setDraft(null);
                setOwnSla(null);
                state.reload();
              },
            );
          }}
        >
          <label className="check">
            <input type="checkbox" checked={isOwn} disabled={readOnly} onChange={(e) => setOwnSla(e.target.checked)} />
            This company has its own SLA (otherwise the defaults apply)
          </label>
          <div className="table-wrap" role="region" aria-label="Company SLA" tabIndex={0}>
            <table aria-label="Company SLA">
              <thead>
                <tr>
                  <th scope="col">Priority</th>
                  {SLA_STEPS.map(([key, label]) => (
                    <th key={key} scope="col">
                      {label}
                    </th>
                  ))}
                  <th scope="col">In force</th>
                </tr>
              </thead>
              <tbody>
                {levels.map((level, index) => (
                  <tr key={level}>
                    <td>{level}</td>
                    {SLA_STEPS.map(([key, label]) => {
                      const problem = errors[`overrides.${data.overrides.filter((o) => o.integration_id || o.account).length + index}.${key}`];
                      return (
                        <td key={key}>
                          {readOnly ? (
                            formatValue(current(level, key))
                          ) : (
                            <input
                              type="number"
                              aria-label={`${company?.name ?? ""} ${level} ${label}`}
                              aria-invalid={problem ? true : undefined}
                              placeholder={String(data.effective[level][key as "tta_minutes"])}
                              value={current(level, key)}
                              onChange={(e) => setDraft((all) => ({ ...all, [level]: { ...all?.[level], [key]: e.target.value === "" ? "" : Number(e.target.value) } }))}
                            />
                          )}
                          {problem ? <span className="field-error">{problem}</span> : null}
                        </td>
                      );
                    })}
                    <td>
                      {SLA_STEPS.map(([k]) => data.effective[level][k as "tta_minutes"]).join(" / ")} min · {data.effective[level].source}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {readOnly ? null : (
            <p>
              <button type="submit" className="primary" disabled={action.busy}>
                Save company SLA
              </button>
            </p>
          )}
        </form>
      ) : null}
    </section>
  );
}

/** Overrides for one XSOAR integration (every account of it) or one account: the most specific wins. */
function SlaScopedOverrides() {
  const { readOnly } = useSession();
  const { companyId, companies } = useCompany();
  const company = companies.find((c) => c.id === companyId);
  const [tick, setTick] = useState(0);
  const state = useAsync(() => (companyId ? getJson<CompanySla>(`/admin/companies/${companyId}/sla/`) : Promise.resolve(undefined)), [companyId, tick]);
  const integrations = useAsync(() => getJson<Page>("/integration/", { limit: 200 }), []);
  const action = useAction();
  const [adding, setAdding] = useState(false);
  if (!companyId) return null;
  const data = state.data;
  const xsoar = (integrations.data?.items ?? []).filter((i) => i.subtype === "CORTEX_XSOAR");
  const integrationName = (id: unknown) => String(xsoar.find((i) => i.id === id)?.instance_name ?? id ?? "every integration");
  const asInput = (o: Row) => ({ level: o.level, tta_minutes: o.tta_minutes, ttn_minutes: o.ttn_minutes, ttdn_minutes: o.ttdn_minutes, integration_id: o.integration_id ?? null, account: o.account ?? null });
  const scoped = (data?.overrides ?? []).filter((o) => o.integration_id || o.account);
  const put = (overrides: Row[]) => sendJson("PUT", `/admin/companies/${companyId}/sla/`, { overrides });
  const levels = data ? Object.keys(data.effective) : [];
  return (
    <section aria-labelledby="sla-scoped" style={{ marginTop: "1.5rem" }}>
      <div className="page-header">
        <h2 id="sla-scoped">{company?.name ?? "Company"}: SLA for one XSOAR integration or account</h2>
        {readOnly || adding || !data ? null : (
          <button type="button" onClick={() => setAdding(true)}>
            Add integration SLA
          </button>
        )}
      </div>
      <p className="muted">They apply while the company has its own SLA; per priority, an account's targets beat its integration's, which beat the company's.</p>
      {action.outcome}
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {adding && data ? (
        <EntityForm
          title="New integration SLA"
          initial={{ integration_id: xsoar[0]?.id ?? "", account: "", level: levels[0] ?? "P1", tta_minutes: null, ttn_minutes: null, ttdn_minutes: null }}
          fields={[
            { name: "integration_id", label: "XSOAR integration", type: "select", required: true, options: xsoar.map((i) => ({ value: String(i.id), label: String(i.instance_name) })) },
            { name: "account", label: "Account", hint: "empty: every account of the integration", maxLength: 128 },
            { name: "level", label: "Priority", type: "select", required: true, options: levels.map((l) => ({ value: l, label: l })) },
            ...SLA_STEPS.map(([key, label]) => ({ name: key, label, type: "number" as const, required: true, min: 1 })),
          ]}
          submitLabel="Save integration SLA"
          onCancel={() => setAdding(false)}
          onSubmit={async (values) => {
            const added = { ...values, account: values.account === "" ? null : values.account };
            await put([...data.overrides.map(asInput), added]);
            setAdding(false);
            setTick((t) => t + 1);
            void action.run(async () => "Integration SLA saved.");
          }}
        />
      ) : null}
      {data ? (
        scoped.length ? (
          <div className="table-wrap" tabIndex={0} role="region" aria-label="Integration SLA">
            <table data-testid="sla-scoped">
              <thead>
                <tr>
                  <th scope="col">Integration</th>
                  <th scope="col">Account</th>
                  <th scope="col">Priority</th>
                  {SLA_STEPS.map(([key, label]) => (
                    <th key={key} scope="col">
                      {label}
                    </th>
                  ))}
                  {readOnly ? null : <th scope="col">Actions</th>}
                </tr>
              </thead>
              <tbody>
                {scoped.map((o) => (
                  <tr key={String(o.id)}>
                    <td>{integrationName(o.integration_id)}</td>
                    <td>{formatValue(o.account ?? "every account")}</td>
                    <td>{String(o.level)}</td>
                    {SLA_STEPS.map(([key]) => (
                      <td key={key}>{formatValue(o[key])}</td>
                    ))}
                    {readOnly ? null : (
                      <td>
                        <ConfirmButton
                          label="Remove"
                          question={`Remove the ${String(o.level)} SLA of ${integrationName(o.integration_id)}${o.account ? ` / ${String(o.account)}` : ""}?`}
                          disabled={action.busy}
                          onConfirm={() =>
                            action.run(
                              () => put(data.overrides.filter((x) => x.id !== o.id).map(asInput)).then(() => "Integration SLA removed."),
                              () => setTick((t) => t + 1),
                            )
                          }
                        />
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <p className="muted">No SLA for one integration or account.</p>
        )
      ) : null}
    </section>
  );
}

function Sla() {
  return (
    <>
      <PageHeader title="SLA" />
      <SlaDefaults />
      <SlaOverrides />
      <SlaScopedOverrides />
    </>
  );
}

interface SessionRow {
  id: string;
  started_at: string;
  last_used_at: string;
  expires_at: string;
  client_ip: string | null;
  device: string;
  current: boolean;
}

/** A person's sign-in sessions (refresh-token families): end them all, or reset their MFA. */
function UserSecurity({ user, onClose }: { user: { id: string; username: string }; onClose: () => void }) {
  const { readOnly } = useSession();
  const sessions = useAsync(() => getJson<{ items: SessionRow[]; total: number }>(`/admin/users/${user.id}/sessions/`), [user.id]);
  const action = useAction();
  return (
    <section className="card stack" aria-labelledby={`security-${user.id}`}>
      <div className="page-header">
        <h2 id={`security-${user.id}`}>{user.username}: sessions and MFA</h2>
        <button type="button" className="ghost" onClick={onClose}>
          Close
        </button>
      </div>
      {action.outcome}
      {sessions.error ? <ErrorBox error={sessions.error} onRetry={sessions.reload} /> : null}
      {sessions.loading && !sessions.data ? <Loading label="Loading the sessions…" /> : null}
      {sessions.data ? (
        sessions.data.items.length ? (
          <div className="table-wrap" tabIndex={0} role="region" aria-label={`Sessions of ${user.username}`}>
            <table data-testid="user-sessions">
              <thead>
                <tr>
                  <th scope="col">Device</th>
                  <th scope="col">From</th>
                  <th scope="col">Started</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Expires</th>
                </tr>
              </thead>
              <tbody>
                {sessions.data.items.map((s) => (
                  <tr key={s.id}>
                    <td>{s.device}</td>
                    <td>{s.client_ip ?? "—"}</td>
                    <td>{formatDate(s.started_at)}</td>
                    <td>{formatDate(s.last_used_at)}</td>
                    <td>{formatDate(s.expires_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <p className="muted">No open sessions.</p>
        )
      ) : null}
      {readOnly ? null : (
        <div className="page-actions">
          <ConfirmButton
            label="End all sessions"
            question={`End every session of ${user.username}? They must sign in again.`}
            confirmLabel="Yes, end them"
            disabled={action.busy || !sessions.data?.items.length}
            onConfirm={() => action.run(() => sendJson("DELETE", `/admin/users/${user.id}/sessions/`).then(() => `${user.username}'s sessions ended.`), sessions.reload)}
          />
          <ConfirmButton
            label="Reset MFA"
            question={`Turn off ${user.username}'s two-factor authentication? They enrol again at their next sign-in if the policy requires it.`}
            confirmLabel="Yes, reset MFA"
            disabled={action.busy}
            onConfirm={() => action.run(() => sendJson("DELETE", `/admin/users/${user.id}/mfa/`).then(() => `${user.username}'s MFA was reset.`))}
          />
        </div>
      )}
    </section>
  );
}

const ADMIN_ROLES = [
  { value: "SUPER_ADMIN", label: "Super administrator" },
  { value: "ADMIN", label: "Administrator" },
  { value: "READ_ONLY_ADMIN", label: "Read-only administrator" },
];
const TENANT_ROLES = [
  { value: "TENANT_ADMIN", label: "Tenant administrator" },
  { value: "TENANT_USER", label: "Tenant user" },
];

function AdminUsers() {
  const { readOnly, user: me } = useSession();
  const action = useAction();
  const [editing, setEditing] = useState<Row | "new" | null>(null);
  const [security, setSecurity] = useState<Row | null>(null);
  const [tick, setTick] = useState(0);
  const done = (message: string) => {
    setEditing(null);
    setTick((t) => t + 1);
    action.run(async () => message);
  };
  return (
    <section aria-labelledby="admins-title" style={{ marginBottom: "1.5rem" }}>
      <div className="page-header">
        <h2 id="admins-title">Administrators</h2>
        {readOnly || editing ? null : (
          <button type="button" onClick={() => setEditing("new")}>
            New administrator
          </button>
        )}
      </div>
      {action.outcome}
      {editing === "new" ? (
        <EntityForm
          title="New administrator"
          initial={{ role: "ADMIN" }}
          fields={[
            { name: "username", label: "User name", required: true, maxLength: 150 },
            { name: "email", label: "E-mail", type: "email" },
            { name: "full_name", label: "Full name" },
            { name: "role", label: "Role", type: "select", required: true, options: ADMIN_ROLES },
            { name: "password", label: "Password", type: "password", required: true, hint: "12+ characters, three kinds of character" },
          ]}
          submitLabel="Create administrator"
          onCancel={() => setEditing(null)}
          onSubmit={async (values) => {
            await sendJson("POST", "/admin/users/", { ...compact(values), kind: "admin" });
            done(`${String(values.username)} created.`);
          }}
        />
      ) : editing ? (
        <EntityForm
          title={`Edit ${String(editing.username)}`}
          initial={{ email: editing.email ?? "", full_name: editing.full_name ?? "", role: editing.role, is_active: editing.is_active }}
          fields={[
            { name: "email", label: "E-mail", type: "email" },
            { name: "full_name", label: "Full name" },
            { name: "role", label: "Role", type: "select", required: true, options: ADMIN_ROLES },
            { name: "is_active", label: "Active", type: "checkbox" },
            { name: "password", label: "New password", type: "password", hint: "leave empty to keep the password" },
          ]}
          submitLabel="Save administrator"
          onCancel={() => setEditing(null)}
          onSubmit={async (values) => {
            await sendJson("PATCH", `/admin/users/${editing.id}/`, compact(values));
            done(`${String(editing.username)} saved.`);
          }}
        />
      ) : null}
      {security ? <UserSecurity key={String(security.id)} user={{ id: String(security.id), username: String(security.username) }} onClose={() => setSecurity(null)} /> : null}
      <Listing
        path="/admin/users/"
        query={{ kind: "admin" }}
        version={tick}
        label="Administrators"
        columns={[
          { key: "username", label: "User" },
          { key: "role", label: "Role" },
          { key: "auth_source", label: "Source" },
          { key: "is_active", label: "Active" },
          { key: "last_login_at", label: "Last sign-in", render: (r) => formatDate(r.last_login_at) },
        ]}
        actions={(row, reload) => (
          <>
            {readOnly ? null : (
              <button type="button" aria-label={`Edit ${String(row.username)}`} onClick={() => setEditing(row)}>
                Edit
              </button>
            )}
            <button type="button" aria-label={`Sessions and MFA of ${String(row.username)}`} onClick={() => setSecurity(row)}>
              Sessions and MFA
            </button>
            {readOnly || row.id === me?.id ? null : (
              <ConfirmButton
                label="Delete"
                question={`Delete the administrator ${String(row.username)}?`}
                disabled={action.busy}
                onConfirm={() => action.run(() => sendJson("DELETE", `/admin/users/${row.id}/`).then(() => `${String(row.username)} deleted.`), reload)}
              />
            )}
          </>
        )}
      />
    </section>
  );
}

function CompanyUsers() {
  const { readOnly } = useSession();
  const { companyId, companies } = useCompany();
  const company = companies.find((c) => c.id === companyId);
  const permissions = useChoices("/tenant/permission-choices/");
  const action = useAction();
  const [editing, setEditing] = useState<Row | "new" | null>(null);
  const [security, setSecurity] = useState<Row | null>(null);
  const [tick, setTick] = useState(0);
  if (!companyId) return <Empty>Choose a company to see its users.</Empty>;
  const done = (message: string) => {
    setEditing(null);
    setTick((t) => t + 1);
    action.run(async () => message);
  };
  return (
    <section aria-labelledby="members-title">
      <div className="page-header">
        <h2 id="members-title">{company?.name ?? "Company"}: users</h2>
        {readOnly || editing ? null : (
          <button type="button" onClick={() => setEditing("new")}>
            New company user
          </button>
        )}
      </div>
      {action.outcome}
      {editing === "new" ? (
        <EntityForm
          title={`New user of ${company?.name ?? "the company"}`}
          initial={{ tenant_role: "TENANT_USER", permissions: ["DASHBOARD"] }}
          fields={[
            { name: "username", label: "User name", required: true, maxLength: 150 },
            { name: "email", label: "E-mail", type: "email" },
            { name: "password", label: "Password", type: "password", required: true, hint: "12+ characters, three kinds of character" },
            { name: "tenant_role", label: "Role", type: "select", required: true, options: TENANT_ROLES },
            { name: "permissions", label: "Permissions", type: "checks", options: permissions },
          ]}
          submitLabel="Create user"
          onCancel={() => setEditing(null)}
          onSubmit={async (values) => {
            await sendJson("POST", `/admin/companies/${companyId}/users/`, compact(values));
            done(`${String(values.username)} created.`);
          }}
        />
      ) : editing ? (
        <EntityForm
          title={`Edit ${String(editing.username)}`}
          initial={{ email: editing.email ?? "", tenant_role: editing.tenant_role, permissions: editing.permissions, active: editing.active }}
          fields={[
            { name: "email", label: "E-mail", type: "email" },
            { name: "tenant_role", label: "Role", type: "select", required: true, options: TENANT_ROLES },
            { name: "permissions", label: "Permissions", type: "checks", options: permissions },
            { name: "active", label: "Active", type: "checkbox" },
            { name: "password", label: "New password", type: "password", hint: "leave empty to keep the password" },
          ]}
          submitLabel="Save user"
          onCancel={() => setEditing(null)}
          onSubmit={async (values) => {
            await sendJson("PUT", `/admin/companies/${companyId}/users/${editing.user_id}/`, compact(values));
            done(`${String(editing.username)} saved.`);
          }}
        />
      ) : null}
      {security ? <UserSecurity key={String(security.user_id)} user={{ id: String(security.user_id), username: String(security.username) }} onClose={() => setSecurity(null)} /> : null}
      <Listing
        path={`/admin/companies/${companyId}/users/`}
        version={tick}
        label="Company users"
        columns={[
          { key: "username", label: "User" },
          { key: "tenant_role", label: "Role" },
          { key: "permissions", label: "Permissions" },
          { key: "ldap_group", label: "Directory group" },
          { key: "active", label: "Active" },
        ]}
        actions={(row, reload) => (
          <>
            {readOnly ? null : (
              <button type="button" aria-label={`Edit ${String(row.username)}`} onClick={() => setEditing(row)}>
                Edit
              </button>
            )}
            <button type="button" aria-label={`Sessions and MFA of ${String(row.username)}`} onClick={() => setSecurity(row)}>
              Sessions and MFA
            </button>
            {readOnly ? null : (
              <ConfirmButton
                label="Delete"
                question={`Delete ${String(row.username)} from ${company?.name ?? "the company"}?`}
                disabled={action.busy}
                onConfirm={() => action.run(() => sendJson("DELETE", `/admin/companies/${companyId}/users/${row.user_id}/`).then(() => `${String(row.username)} deleted.`), reload)}
              />
            )}
          </>
        )}
      />
    </section>
  );
}

function Users() {
  return (
    <>
      <PageHeader title="Users and roles" />
      <AdminUsers />
      <CompanyUsers />
    </>
  );
}

interface DirectoryGroup {
  ldap_group: string;
  tenant_role: string;
  permissions: string[];
}

function DirectoryGroups() {
  const { readOnly } = useSession();
  const { companyId, companies } = useCompany();
  const company = companies.find((c) => c.id === companyId);
  const permissions = useChoices("/tenant/permission-choices/");
  const state = useAsync(() => (companyId ? getJson<{ items: DirectoryGroup[] }>(`/admin/companies/${companyId}/directory-groups/`) : Promise.resolve(undefined)), [companyId]);
  const action = useAction();
  const [rows, setRows] = useState<DirectoryGroup[] | null>(null);
  if (!companyId) return <Empty>Choose a company to map its directory groups.</Empty>;
  const groups = rows ?? state.data?.items ?? [];
  const errors = fieldErrors(action.error);
  const update = (index: number, change: Partial<DirectoryGroup>) => setRows(groups.map((g, i) => (i === index ? { ...g, ...change } : g)));
  return (
    <>
      <PageHeader title="Directory groups" />
      <p className="muted">
        Members of these LDAP / Active Directory (or SSO) groups sign in to <strong>{company?.name ?? "the company"}</strong> with the role and permissions given here. Switch company at the top.
      </p>
      {action.outcome}
      {state.error ? <ErrorBox error={state.error} onRetry={state.reload} /> : null}
      {!state.data && !state.error ? <Loading /> : null}
      {state.data ? (
        <form
          className="stack"
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            void action.run(
              () => sendJson("PUT", `/admin/companies/${companyId}/directory-groups/`, { items: groups }).then(() => "Directory groups saved."),
              () => {
                setRows(null);
                state.reload();
              },
            );
          }}
        >
          {groups.length === 0 ? <Empty>No directory group signs in to this company.</Empty> : null}
          {groups.map((group, index) => (
            <fieldset key={index} aria-label={`Directory group ${index + 1}`} disabled={readOnly}>
              <legend>{group.ldap_group || "New group"}</legend>
              <div className="form-grid">
                <Field spec={{ name: "ldap_group", label: "Group (name or DN)", required: true }} value={group.ldap_group} error={errors[`items.${index}.ldap_group`]} onChange={(v) => update(index, { ldap_group: String(v) })} />
                <Field spec={{ name: "tenant_role", label: "Role", type: "select", required: true, options: TENANT_ROLES }} value={group.tenant_role} error={errors[`items.${index}.tenant_role`]} onChange={(v) => update(index, { tenant_role: String(v) })} />
              </div>
              <Field spec={{ name: "permissions", label: "Permissions", type: "checks", options: permissions }} value={group.permissions} error={errors[`items.${index}.permissions`]} onChange={(v) => update(index, { permissions: v as string[] })} />
              {readOnly ? null : (
                <button type="button" className="danger" onClick={() => setRows(groups.filter((_, i) => i !== index))}>
                  Remove {group.ldap_group || "group"}
                </button>
              )}
            </fieldset>
          ))}
          {readOnly ? null : (
            <div className="page-actions">
              <button type="button" onClick={() => setRows([...groups, { ldap_group: "", tenant_role: "TENANT_USER", permissions: ["DASHBOARD"] }])}>
                Add directory group
              </button>
              <button type="submit" className="primary" disabled={action.busy}>
                Save directory groups
              </button>
            </div>
          )}
        </form>
      ) : null}
    </>
  );
}

function LoginAudit() {
  return (
    <>
      <PageHeader title="Login audit" />
      <Listing
        path="/admin/login-audit/"
        label="Login audit"
        columns={[
          { key: "at", label: "When", render: (r) => formatDate(r.at) },
          { key: "username", label: "User" },
          { key: "outcome", label: "Outcome" },
          { key: "method", label: "Method" },
          { key: "reason", label: "Reason" },
          { key: "client_ip", label: "Address" },
        ]}
      />
    </>
  );
}

function DeadLetters() {
  const { readOnly } = useSession();
  const action = useAction();
  return (
    <>
      <PageHeader title="Dead letters" />
      {action.outcome}
      <Listing
        path="/admin/dead-letters/"
        label="Dead-letter queues"
        columns={[
          { key: "queue", label: "Queue" },
          { key: "dead_letter_queue", label: "Dead-letter queue" },
          { key: "parked", label: "Parked messages" },
        ]}
        actions={
          readOnly
            ? undefined
            : (row, reload) => (
                <button type="button" disabled={action.busy || !row.parked} onClick={() => void action.run(() => sendJson<Row>("POST", "/admin/dead-letters/replay/", { queue: row.queue }).then((r) => `Replayed: ${formatValue(r?.replayed ?? r)}`), reload)}>
                  Replay
                </button>
              )
        }
      />
    </>
  );
}

const PAGES: Record<string, () => JSX.Element> = {
  companies: Companies,
  integrations: Integrations,
  mappings: Mappings,
  sla: Sla,
  users: Users,
  "directory-groups": DirectoryGroups,
  "login-audit": LoginAudit,
  "dead-letters": DeadLetters,
};

export default function AdminPages() {
  const { page } = useParams();
  const Page = PAGES[page ?? ""];
  return Page ? <Page /> : <Empty>There is no such page.</Empty>;
}
