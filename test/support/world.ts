/**
 * Starts the whole loopback test world in dependency order: the fake CI issuer,
 * the oidc-provider IdP trusting it, and the model server accepting only the IdP's
 * live access tokens. `close()` stops them in reverse order.
 */
import { startCiIssuer } from "./ci-issuer.js";
import type { CiIssuer, CiIssuerOptions } from "./ci-issuer.js";
import { startIdp } from "./idp.js";
import type { Idp, IdpOptions } from "./idp.js";
import { startModelServer } from "./model-server.js";
import type { ModelServer, ModelServerOptions } from "./model-server.js";

export interface WorldOptions {
  ci?: CiIssuerOptions;
  /** IdP options; `ciIssuer` and `ciJwksUrl` come from the CI issuer. */
  idp?: Omit<IdpOptions, "ciIssuer" | "ciJwksUrl">;
  /** Model server options; tokens are validated with `idp.isValidAccessToken` unless overridden. */
  model?: Partial<ModelServerOptions>;
}

export interface World {
  ci: CiIssuer;
  idp: Idp;
  model: ModelServer;
  close(): Promise<void>;
}

/** Starts CI issuer → IdP → model server on 127.0.0.1; stops whatever started if a later step fails. */
export async function startWorld(opts: WorldOptions = {}): Promise<World> {
  const ci = await startCiIssuer(opts.ci);
  let idp: Idp | undefined;
  try {
    idp = await startIdp({ ...opts.idp, ciIssuer: ci.issuer, ciJwksUrl: ci.jwksUrl });
    const started: Idp = idp;
    const model = await startModelServer({
      ...opts.model,
      validateToken: opts.model?.validateToken ?? ((token) => started.isValidAccessToken(token)),
    });
    return {
      ci,
      idp: started,
      model,
      async close() {
        await model.close();
        await started.close();
        await ci.close();
      },
    };
  } catch (err) {
    await idp?.close();
    await ci.close();
    throw err;
  }
}
