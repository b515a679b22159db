// The agent's core loop in a real browser, through the shipped client over
// gRPC-Web: list attentions, open the queued one, reply, fill the form and
// finish. The page reports what happened in #result for the driver to read.
import { deskClient } from "../src/index.js";

const params = new URLSearchParams(location.search);
const gateway = params.get("gateway") ?? "";
const token = params.get("token") ?? "";
const result = document.getElementById("result")!;

async function run(): Promise<Record<string, unknown>> {
  const desk = deskClient(gateway, () => token);
  const me = await desk.getMe({});
  const list = await desk.listAttentions({});
  const queued = list.attentions[0];
  const opened = await desk.openAttention({ attentionId: queued.id, messagePageSize: 20 });
  const sent = await desk.sendText({
    attentionId: queued.id,
    text: "Hola desde el navegador",
    idempotencyKey: `browser-${queued.id}`,
  });
  await desk.saveFormDraft({
    attentionId: queued.id,
    values: { motivo: { kind: { case: "choice", value: "compra" } } },
  });
  const finished = await desk.finishAttention({ attentionId: queued.id });
  return {
    agent: me.agent?.id,
    attention: queued.id,
    customer: opened.attention?.customer?.name,
    firstMessage: opened.messages[0]?.text,
    sentWamid: sent.message?.wamid,
    finishedState: finished.attention?.state,
  };
}

run().then(
  (outcome) => (result.textContent = JSON.stringify({ ok: true, ...outcome })),
  (error) => (result.textContent = JSON.stringify({ ok: false, error: String(error) })),
);
