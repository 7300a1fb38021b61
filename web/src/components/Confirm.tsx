import { useEffect, useRef, useState } from "react";

/**
 * A button whose action needs a second, explicit step ("Delete" → "Delete <what>? Yes / Cancel"),
 * drawn in place so it is reachable by keyboard and read by screen readers.
 */
export function ConfirmButton({ label, question, confirmLabel, onConfirm, disabled, className = "danger" }: { label: string; question: string; confirmLabel?: string; onConfirm: () => void | Promise<void>; disabled?: boolean; className?: string }) {
  const [asking, setAsking] = useState(false);
  const yes = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) yes.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button type="button" className={className} disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-label={question}>
      <span>{question}</span>
      <button
        type="button"
        ref={yes}
        className="danger"
        onClick={() => {
          setAsking(false);
          void onConfirm();
        }}
      >
        {confirmLabel ?? `Yes, ${label.toLowerCase()}`}
      </button>
      <button type="button" className="ghost" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}
