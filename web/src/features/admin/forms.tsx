// Admin forms: one way to lay out fields, send them and show what the API refused — its message and
// request id at the top, and each field's reason beside the field (the API's error shape:
// details.errors[].loc/msg for validation, details.field for a conflict such as a taken name).
import { useId, useState, type FormEvent, type ReactNode } from "react";
import { ApiError } from "../../api/client";
import { ErrorBox } from "../../components/States";

export type Values = Record<string, unknown>;

export interface Option {
  value: string;
  label: string;
}

export interface FieldSpec {
  name: string;
  label: string;
  type?: "text" | "password" | "number" | "email" | "url" | "select" | "checkbox" | "checks" | "textarea";
  options?: Option[];
  required?: boolean;
  min?: number;
  max?: number;
  step?: string;
  minLength?: number;
  maxLength?: number;
  hint?: string;
  placeholder?: string;
  autoComplete?: string;
}

export function asError(exc: unknown): ApiError {
  return exc instanceof ApiError ? exc : new ApiError(0, "client_error", String(exc), null);
}

/** Field name (dotted, without the leading "body") -> the API's reason. */
export function fieldErrors(error: ApiError | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!error) return out;
  const errors = (error.details?.errors as { loc?: unknown[]; msg?: string }[] | undefined) ?? [];
  for (const item of errors) {
    const loc = (item.loc ?? []).map(String);
    const path = (loc[0] === "body" || loc[0] === "query" ? loc.slice(1) : loc).join(".");
    if (path && !out[path]) out[path] = item.msg ?? "not valid";
  }
  if (error.code === "weak_password" && !out.password) out.password = error.message;
  const field = error.details?.field;
  if (typeof field === "string" && !out[field]) out[field] = error.message;
  return out;
}

/** The API's reasons that no field on the form shows (so none is lost). */
function unplaced(errors: Record<string, string>, fields: FieldSpec[]): [string, string][] {
  const names = new Set(fields.map((f) => f.name));
  return Object.entries(errors).filter(([path]) => !names.has(path));
}

export function Field({ spec, value, onChange, error }: { spec: FieldSpec; value: unknown; onChange: (value: unknown) => void; error?: string }) {
  const id = useId();
  const described = [spec.hint ? `${id}-hint` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ") || undefined;
  const common = { id, name: spec.name, "aria-invalid": error ? true : undefined, "aria-describedby": described } as const;
  let control: ReactNode;
  switch (spec.type) {
    case "select":
      control = (
        <select {...common} required={spec.required} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)}>
          {spec.required ? null : <option value="">—</option>}
          {(spec.options ?? []).map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ))}
        </select>
      );
      break;
    case "checkbox":
      return (
        <label className="check">
          <input {...common} type="checkbox" checked={Boolean(value)} onChange={(e) => onChange(e.target.checked)} />
          {spec.label}
          {error ? (
            <span className="field-error" id={`${id}-error`}>
              {error}
            </span>
          ) : null}
        </label>
      );
    case "checks": {
      const chosen = new Set((value as string[] | undefined) ?? []);
      return (
        <fieldset aria-describedby={described} aria-invalid={error ? true : undefined}>
          <legend>{spec.label}</legend>
          <div className="checks">
            {(spec.options ?? []).map((o) => (
              <label key={o.value}>
                <input
                  type="checkbox"
                  name={spec.name}
                  value={o.value}
                  checked={chosen.has(o.value)}
                  onChange={(e) => {
                    const next = new Set(chosen);
                    if (e.target.checked) next.add(o.value);
                    else next.delete(o.value);
                    onChange([...next]);
                  }}
                />
                {o.label}
              </label>
            ))}
          </div>
          {error ? (
            <span className="field-error" id={`${id}-error`}>
              {error}
            </span>
          ) : null}
        </fieldset>
      );
    }
    case "textarea":
      control = <textarea {...common} required={spec.required} rows={4} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)} />;
      break;
    default:
      control = (
        <input
          {...common}
          type={spec.type ?? "text"}
          required={spec.required}
          min={spec.min}
          max={spec.max}
          step={spec.step}
          minLength={spec.minLength}
          maxLength={spec.maxLength}
          placeholder={spec.placeholder}
          autoComplete={spec.autoComplete ?? (spec.type === "password" ? "new-password" : "off")}
          value={value === undefined || value === null ? "" : String(value)}
          onChange={(e) => onChange(spec.type === "number" ? (e.target.value === "" ? null : Number(e.target.value)) : e.target.value)}
        />
      );
  }
  return (
    <label htmlFor={id}>
      {spec.label}
      {control}
      {spec.hint ? (
        <span className="muted" id={`${id}-hint`}>
          {spec.hint}
        </span>
      ) : null}
      {error ? (
        <span className="field-error" id={`${id}-error`}>
          {error}
        </span>
      ) : null}
    </label>
  );
}

/** A whole form: fields, the submit button, a cancel, the API's refusal shown where it belongs. */
export function EntityForm({
  title,
  fields,
  initial,
  submitLabel,
  onSubmit,
  onCancel,
  extra,
}: {
  title: string;
  fields: FieldSpec[] | ((values: Values) => FieldSpec[]);
  initial: Values;
  submitLabel: string;
  onSubmit: (values: Values) => Promise<void>;
  onCancel?: () => void;
  /** More buttons that use the current values (e.g. test a connection before saving). */
  extra?: (values: Values, run: (work: () => Promise<void>) => void, busy: boolean) => ReactNode;
}) {
  const [values, setValues] = useState<Values>(initial);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const shown = typeof fields === "function" ? fields(values) : fields;
  const errors = fieldErrors(error);
  const run = (work: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    work()
      .catch((exc: unknown) => setError(asError(exc)))
      .finally(() => setBusy(false));
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    run(() => onSubmit(values));
  };
  const rest = unplaced(errors, shown);
  return (
    <form className="card stack admin-form" aria-label={title} onSubmit={submit} noValidate>
      <h2>{title}</h2>
      {error ? <ErrorBox error={error} /> : null}
      {rest.length ? (
        <ul className="field-error" aria-label="Other problems">
          {rest.map(([path, msg]) => (
            <li key={path}>
              {path}: {msg}
            </li>
          ))}
        </ul>
      ) : null}
      <div className="form-grid">
        {shown.map((spec) => (
          <Field key={spec.name} spec={spec} value={values[spec.name]} error={errors[spec.name]} onChange={(v) => setValues((all) => ({ ...all, [spec.name]: v }))} />
        ))}
      </div>
      <div className="page-actions">
        <button type="submit" className="primary" disabled={busy}>
          {submitLabel}
        </button>
        {extra?.(values, run, busy)}
        {onCancel ? (
          <button type="button" className="ghost" onClick={onCancel}>
            Cancel
          </button>
        ) : null}
      </div>
    </form>
  );
}

/** Drops empty strings (optional fields left blank) so the API's defaults apply. */
export function compact(values: Values): Values {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== "" && v !== undefined));
}
