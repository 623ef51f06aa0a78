/**
 * The sandbox's resource store: Medplum's in-memory repository plus what it lacks (platform-notes, "Embedded FHIR
 * R4 server"): every write is validated ({@link FhirValidator}), and transactions are atomic — the stock
 * `MemoryRepository.withTransaction` just runs the callback, so a transaction failing half-way would leave half of
 * its writes behind.
 *
 * Atomicity: inside `withTransaction` every write records the prior state of the resource it touches (an undo
 * journal held in AsyncLocalStorage, so it only sees writes made on behalf of that transaction); on failure the
 * journal is replayed backwards. Transactions and writes outside them are serialised by one lock, so an outside write
 * can never be undone by someone else's rollback. Reads take no lock (read-uncommitted, acceptable for a demo store).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { OperationOutcomeError, type WithId } from '@medplum/core';
import { MemoryRepository } from '@medplum/fhir-router';
import type { Resource } from '@medplum/fhirtypes';
import { FhirValidator } from './validate.ts';

interface UndoEntry {
  readonly resourceType: string;
  readonly id: string;
  /** The stored resource before the write, or undefined when the write created it. */
  readonly prior: Resource | undefined;
}

/** A minimal FIFO async lock. */
class Lock {
  #tail: Promise<void> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/**
 * Called after a committed write (create, update, patch; transactions: after commit, once per written resource)
 * with the stored resource and the version it replaced. Used by the sandbox's subscription notifier
 * (`subscriptions.ts`). Observers must not throw; they run after the write has succeeded.
 */
export type WriteObserver = (current: Resource, prior: Resource | undefined) => void;

export class SandboxRepository extends MemoryRepository {
  readonly validator: FhirValidator;
  readonly #journal = new AsyncLocalStorage<UndoEntry[]>();
  readonly #lock = new Lock();
  // --- write observers (issue 8: subscription notifications) ---
  readonly #observers: WriteObserver[] = [];

  /** Registers a {@link WriteObserver}; returns a function that removes it. */
  onWrite(observer: WriteObserver): () => void {
    this.#observers.push(observer);
    return () => void this.#observers.splice(this.#observers.indexOf(observer) >>> 0, 1);
  }

  #emit(current: Resource, prior: Resource | undefined): void {
    for (const o of this.#observers) {
      try {
        o(current, prior);
      } catch {
        // an observer's failure must not fail the write that has already succeeded
      }
    }
  }

  constructor(validator: FhirValidator = new FhirValidator()) {
    super();
    this.validator = validator;
  }

  async #prior(resourceType: string, id: string | undefined): Promise<Resource | undefined> {
    if (!id) return undefined;
    try {
      return await super.readResource(resourceType, id);
    } catch (err) {
      if (err instanceof OperationOutcomeError) return undefined;
      throw err;
    }
  }

  /** Runs a write under the lock unless it is part of the current transaction (which holds the lock). */
  #write<T>(fn: (journal: UndoEntry[] | undefined) => Promise<T>): Promise<T> {
    const journal = this.#journal.getStore();
    return journal ? fn(journal) : this.#lock.run(() => fn(undefined));
  }

  // MemoryRepository.updateResource and patchResource both end in createResource, so validating here covers
  // create, update, patch, and the entries of batches and transactions.
  override createResource<T extends Resource>(resource: T): Promise<WithId<T>> {
    return this.#write(async (journal) => {
      this.validator.validate(resource);
      if (resource.meta?.versionId || resource.meta?.lastUpdated) {
        // Server-managed (FHIR http.html#update): MemoryRepository would keep a client's values.
        const { versionId: _v, lastUpdated: _l, ...meta } = resource.meta;
        resource = { ...resource, meta };
      }
      const prior = journal || this.#observers.length > 0 ? await this.#prior(resource.resourceType, resource.id) : undefined;
      const result = await super.createResource(resource);
      journal?.push({ resourceType: result.resourceType, id: result.id, prior });
      if (!journal) this.#emit(result, prior);
      return result;
    });
  }

  override deleteResource(resourceType: string, id: string): Promise<void> {
    return this.#write(async (journal) => {
      const prior = journal ? await this.#prior(resourceType, id) : undefined;
      await super.deleteResource(resourceType, id);
      journal?.push({ resourceType, id, prior });
    });
  }

  override withTransaction<TResult>(callback: (client: undefined) => Promise<TResult>): Promise<TResult> {
    if (this.#journal.getStore()) return callback(undefined); // nested: part of the outer transaction
    return this.#lock.run(async () => {
      const journal: UndoEntry[] = [];
      let result: TResult;
      try {
        result = await this.#journal.run(journal, () => callback(undefined));
      } catch (err) {
        await this.#rollback(journal);
        throw err;
      }
      if (this.#observers.length > 0) {
        for (const entry of journal) {
          const current = await this.#prior(entry.resourceType, entry.id);
          if (current) this.#emit(current, entry.prior);
        }
      }
      return result;
    });
  }

  async #rollback(journal: UndoEntry[]): Promise<void> {
    for (const entry of journal.reverse()) {
      if (entry.prior) {
        // createResource keeps the prior meta.versionId/lastUpdated, so the resource reads exactly as before.
        await super.createResource(entry.prior);
      } else {
        try {
          await super.deleteResource(entry.resourceType, entry.id);
        } catch {
          // already gone: nothing to undo
        }
      }
    }
  }

  /** Number of stored resources by type (for the start-up log and the readiness detail). */
  async countByType(types: readonly string[]): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const t of types) {
      const bundle = await this.search({ resourceType: t as Resource['resourceType'], count: 0, total: 'accurate' });
      if (bundle.total) out[t] = bundle.total;
    }
    return out;
  }
}
