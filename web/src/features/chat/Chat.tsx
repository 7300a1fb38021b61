import { useEffect, useRef, useState, type FormEvent } from "react";
import { getJson, sendJson } from "../../api/client";
import { useSession } from "../../auth/session";
import { useCompany } from "../../components/company";
import { formatDate } from "../../components/format";
import { useLiveFrames, useLiveStatus } from "../../components/live";
import { ErrorBox, Loading, PageHeader } from "../../components/States";
import { useAsync } from "../../components/useAsync";

interface Message {
  id: number;
  company_id: string;
  sender_id: string;
  sender_name: string;
  sender_kind: string;
  body: string;
  sent_at: string;
}

export default function Chat() {
  const session = useSession();
  const { scope, companyId } = useCompany();
  const [messages, setMessages] = useState<Message[]>([]);
  const status = useLiveStatus();
  const [draft, setDraft] = useState("");
  const [sendError, setSendError] = useState<Error | null>(null);
  const log = useRef<HTMLOListElement>(null);
  const history = useAsync(() => getJson<{ items: Message[] }>("/tenant/chat/messages/", { ...scope, limit: 100 }), [scope.company_id]);

  useEffect(() => {
    if (history.data) setMessages([...history.data.items].sort((a, b) => a.id - b.id));
  }, [history.data]);

  useLiveFrames("chat.message", (frame) => {
    const m = (frame.message ?? frame) as Message;
    if (companyId && m.company_id !== companyId) return;
    setMessages((current) => (current.some((c) => c.id === m.id) ? current : [...current, m]));
  });

  useEffect(() => {
    log.current?.scrollTo({ top: log.current.scrollHeight });
    const last = messages[messages.length - 1];
    if (last) void sendJson("POST", "/tenant/chat/messages/seen/", { ...scope, up_to_id: last.id }).catch(() => undefined);
  }, [messages.length]); // eslint-disable-line react-hooks/exhaustive-deps

  const send = async (event: FormEvent) => {
    event.preventDefault();
    const body = draft.trim();
    if (!body) return;
    setSendError(null);
    try {
      const message = await sendJson<Message>("POST", "/tenant/chat/messages/", { body, ...scope });
      setMessages((current) => (current.some((c) => c.id === message.id) ? current : [...current, message]));
      setDraft("");
    } catch (exc) {
      setSendError(exc as Error);
    }
  };

  return (
    <>
      <PageHeader title={session.isAdmin ? "Support chat with the customer" : "Support chat with the SOC"}>
        <span className="muted" role="status" data-testid="chat-status">
          {status === "live" ? "Live" : status === "connecting" ? "Connecting…" : "Offline — retrying"}
        </span>
      </PageHeader>
      <div className="chat">
        {history.error ? <ErrorBox error={history.error} onRetry={history.reload} /> : null}
        {history.loading && !history.data ? <Loading /> : null}
        <ol className="chat-log" ref={log} aria-label="Messages" aria-live="polite" tabIndex={0}>
          {messages.map((m) => (
            <li key={m.id} className={m.sender_id === session.user?.id ? "mine" : ""}>
              <div className="meta">
                {m.sender_name} · {formatDate(m.sent_at)}
              </div>
              <div>{m.body}</div>
            </li>
          ))}
        </ol>
        {sendError && "message" in sendError ? <ErrorBox error={sendError as never} /> : null}
        <form onSubmit={send}>
          <label className="skip-link" htmlFor="chat-input">
            Message
          </label>
          <input id="chat-input" value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="Write a message" autoComplete="off" maxLength={4000} />
          <button type="submit" className="primary">
            Send
          </button>
        </form>
      </div>
    </>
  );
}
