import type { MfaEnrolment } from "../../auth/session";

/** What an authenticator app needs, shown once: the QR code, the secret for manual entry, and the
 * recovery codes to keep somewhere safe. */
export function MfaEnrolmentPanel({ enrolment }: { enrolment: MfaEnrolment }) {
  return (
    <section className="enrolment" aria-label="Authenticator set-up">
      <p>Scan the QR code with your authenticator app (or type the key), then enter the 6-digit code it shows.</p>
      <img className="qr" src={enrolment.qr_svg} alt="QR code of your authenticator key" width={176} height={176} />
      <p>
        Key: <code data-testid="mfa-secret">{enrolment.secret}</code>
      </p>
      <details>
        <summary>Recovery codes ({enrolment.recovery_codes.length})</summary>
        <p className="muted">Each works once instead of a code, if you lose your authenticator. They are shown only now.</p>
        <ul className="codes" aria-label="Recovery codes">
          {enrolment.recovery_codes.map((code) => (
            <li key={code}>
              <code>{code}</code>
            </li>
          ))}
        </ul>
      </details>
    </section>
  );
}
