// Flume's own Java client (flume-ng-sdk's default RpcClient: Avro over Netty) sending
// events shaped as headwater's (six headers, a ~250-byte JSON body, ~440 bytes each) in
// batches to a Flume agent's Avro source, from THREADS threads with a client each.
// scripts/bench-side-by-side.sh runs it with the Flume jars from Maven Central:
//
//   java -cp "$FLUME_LIB/*" scripts/bench/FlumeRpcBench.java HOST PORT THREADS EVENTS BATCH
//
// The events are built (and their ids drawn) before timing starts, 50 batches per
// thread, sent in turn. Prints one line: "<events> events, <threads> threads: <rate> events/s".
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.flume.Event;
import org.apache.flume.api.RpcClient;
import org.apache.flume.api.RpcClientFactory;
import org.apache.flume.event.EventBuilder;

public class FlumeRpcBench {
  /** Distinct batches each thread builds up front and sends in turn. */
  static final int POOL = 50;

  static List<Event> batch(int thread, int start, int size) {
    List<Event> events = new ArrayList<>(size);
    for (int i = start; i < start + size; i++) {
      Map<String, String> headers = new HashMap<>();
      headers.put("id", UUID.randomUUID().toString());
      headers.put("timestamp", Long.toString(System.currentTimeMillis()));
      headers.put("op", "update");
      headers.put("collection", "orders");
      headers.put("key", "order-" + (i % 5000));
      headers.put("seq", Integer.toString(i));
      String body = String.format(
          "{\"order\":%d,\"thread\":%d,\"customer\":\"customer-%05d\",\"status\":\"paid\","
              + "\"items\":[{\"sku\":\"sku-00001\",\"qty\":2},{\"sku\":\"sku-00002\",\"qty\":1}],"
              + "\"note\":\"%s\"}",
          i, thread, i % 5000, "x".repeat(120));
      events.add(EventBuilder.withBody(body.getBytes(StandardCharsets.UTF_8), headers));
    }
    return events;
  }

  public static void main(String[] args) throws Exception {
    String host = args[0];
    int port = Integer.parseInt(args[1]);
    int threads = Integer.parseInt(args[2]);
    int events = Integer.parseInt(args[3]);
    int size = Integer.parseInt(args[4]);
    int perThread = events / threads;
    AtomicReference<Exception> failure = new AtomicReference<>();
    List<Thread> workers = new ArrayList<>();
    CountDownLatch ready = new CountDownLatch(threads);
    CountDownLatch go = new CountDownLatch(1);
    for (int t = 0; t < threads; t++) {
      final int thread = t;
      Thread worker = new Thread(() -> {
        // The events are built before the clock's first reading matters, and reused:
        // this measures what the client sends, not how fast Java formats strings.
        List<List<Event>> batches = new ArrayList<>();
        for (int b = 0; b < POOL; b++) {
          batches.add(batch(thread, b * size, size));
        }
        RpcClient client = null;
        try {
          client = RpcClientFactory.getDefaultInstance(host, port, size);
        } catch (Exception e) {
          failure.compareAndSet(null, e);
        }
        ready.countDown();
        if (client == null) {
          return;
        }
        try {
          go.await();
          int b = 0;
          for (int sent = 0; sent < perThread; sent += size) {
            List<Event> next = batches.get(b++ % POOL);
            client.appendBatch(perThread - sent >= size ? next : next.subList(0, perThread - sent));
          }
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        } catch (Exception e) {
          failure.compareAndSet(null, e);
        } finally {
          client.close();
        }
      });
      workers.add(worker);
      worker.start();
    }
    ready.await();
    long started = System.nanoTime();
    go.countDown();
    for (Thread worker : workers) {
      worker.join();
    }
    double seconds = (System.nanoTime() - started) / 1e9;
    if (failure.get() != null) {
      throw failure.get();
    }
    System.out.printf("%d events, %d threads: %.0f events/s%n", perThread * threads, threads,
        perThread * threads / seconds);
  }
}
