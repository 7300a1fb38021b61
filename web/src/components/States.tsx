import type { ReactNode } from "react";
import type { ApiError } from "../api/client";

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="state loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

/** An API error as a person reads it: the message, the status and the request id to quote. */
export function ErrorBox({ error, onRetry }: { error: ApiError; onRetry?: () => void }) {
  return (
    <div className="state error" role="alert">
      <strong>{error.status === 404 ? "Not found" : "Something went wrong"}</strong>
      <p className="error-message">{error.message}</p>
      <p className="muted">
        {error.status ? `HTTP ${error.status} · ` : ""}
        {error.code}
        {error.requestId ? (
          <>
            {" · request id "}
            <code className="request-id">{error.requestId}</code>
          </>
        ) : null}
      </p>
      {onRetry ? (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state empty">{children}</div>;
}

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="page-header">
      <h1>{title}</h1>
      <div className="page-actions">{children}</div>
    </div>
  );
}
