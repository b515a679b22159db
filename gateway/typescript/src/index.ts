// The atenciones gateway from a browser: typed clients over gRPC-Web, the
// transport the gateway serves on its gRPC port (CORS from its settings).
//
//   const desk = deskClient("https://gateway.example.com", () => token);
//   const { attentions } = await desk.listAttentions({});
//   for await (const item of desk.streamEvents({ cursor })) { ... }
//
// Regenerate src/gen after a proto change: `npm run generate`.
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { AdminService } from "./gen/atenciones/gateway/v1/admin_pb.js";
import { AgentDeskService } from "./gen/atenciones/gateway/v1/gateway_pb.js";

export * from "./gen/atenciones/gateway/v1/admin_pb.js";
export * from "./gen/atenciones/gateway/v1/gateway_pb.js";

/** Adds the caller's bearer token (read anew on every call: tokens expire). */
function bearer(token: () => string): Interceptor {
  return (next) => async (request) => {
    request.header.set("authorization", `Bearer ${token()}`);
    return next(request);
  };
}

function transport(baseUrl: string, token: () => string) {
  return createGrpcWebTransport({ baseUrl, interceptors: [bearer(token)] });
}

/** The agent screen's API. */
export function deskClient(
  baseUrl: string,
  token: () => string,
): Client<typeof AgentDeskService> {
  return createClient(AgentDeskService, transport(baseUrl, token));
}

/** The supervisors' (and reporters') API. */
export function adminClient(
  baseUrl: string,
  token: () => string,
): Client<typeof AdminService> {
  return createClient(AdminService, transport(baseUrl, token));
}
