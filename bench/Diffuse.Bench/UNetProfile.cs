using System.Globalization;
using System.Runtime.InteropServices;
using Diffuse.Models;
using Diffuse.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

/// <summary>
/// Where a training step of the reference U-Net spends its time, by operation type, on one thread: each conv, GroupNorm,
/// linear and attention call of the network is replayed alone at its real shape (forward, then forward + backward), and
/// the optimizer step is timed on its own. Times are this thread's CPU time (clock_gettime), minimum of a few repeats, so
/// other processes on the machine disturb them little.
/// </summary>
internal static class UNetProfile
{
    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec { public long Seconds; public long Nanoseconds; }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    private const int ThreadCpuClock = 3; // CLOCK_THREAD_CPUTIME_ID

    /// <summary>CPU seconds used by the calling thread (all libtorch work runs on it with one thread).</summary>
    public static double ThreadCpuSeconds()
    {
        ClockGetTime(ThreadCpuClock, out var t);
        return t.Seconds + t.Nanoseconds * 1e-9;
    }

    private static double MinTime(int repeats, Action action)
    {
        action();
        double best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            double start = ThreadCpuSeconds();
            action();
            best = Math.Min(best, ThreadCpuSeconds() - start);
        }
        return best;
    }

    private static string Ms(double seconds) => (seconds * 1000).ToString("F1", CultureInfo.InvariantCulture).PadLeft(8);

    public static int Run(string[] args)
    {
        var (numbers, channelsLast) = UNetBench.Options(args);
        int batch = args.Any(a => !a.StartsWith("--", StringComparison.Ordinal)) ? numbers[0] : 128;
        const int repeats = 3;
        set_num_threads(1);
        manual_seed(0);
        using var network = new UNetNetwork(new UNetConfig { Channels = 1 }, 1000) { ChannelsLast = channelsLast };
        network.train();
        using var optimizer = new Diffuse.Optimization.AdamW(network.parameters());
        using var z = randn(batch, 1, 28, 28);
        using var eps = randn(batch, 1, 28, 28);
        using var timesteps = randint(0, 1000, new long[] { batch }).to_type(ScalarType.Float32);

        // Record every leaf call's module and input shape with forward hooks.
        var calls = new List<(string Type, nn.Module<Tensor, Tensor> Module, long[] Shape, long[] Strides)>();
        var hooks = new List<Action>();
        foreach (var (name, module) in network.named_modules())
        {
            string? type = module switch
            {
                Conv2d c when c.weight!.shape[2] == 3 => c.stride![0] == 2 ? "conv3x3 stride 2" : "conv3x3",
                Conv2d => "conv1x1",
                GroupNorm => "group norm",
                Linear => "linear",
                _ => null,
            };
            if (type is null) continue;
            var leaf = (nn.Module<Tensor, Tensor>)module;
            var remover = leaf.register_forward_hook((m, input, output) => { calls.Add((type, leaf, input.shape, input.stride())); return output; });
            hooks.Add(remover.remove);
        }
        using (var scope = NewDisposeScope()) network.call(z, timesteps, null);
        foreach (var remove in hooks) remove();

        var forward = new Dictionary<string, double>();
        var backward = new Dictionary<string, double>();
        foreach (var (type, module, shape, strides) in calls)
        {
            using var scope = NewDisposeScope();
            // The same memory layout as in the network (channels-last for the U-Net's feature maps).
            var x = randn(shape.Aggregate(1L, (a, b) => a * b)).as_strided(shape, strides);
            double f = MinTime(repeats, () => { using var s = NewDisposeScope(); using var ng = no_grad(); module.call(x); });
            var xg = x.detach().requires_grad_(true);
            double fb = MinTime(repeats, () =>
            {
                using var s = NewDisposeScope();
                var y = module.call(xg);
                y.backward(new[] { ones_like(y) });
            });
            forward[type] = forward.GetValueOrDefault(type) + f;
            backward[type] = backward.GetValueOrDefault(type) + Math.Max(0, fb - f);
        }
        optimizer.ZeroGrad();

        // Attention: the SDPA kernel at the real shapes (heads 4, 49 positions, 16 channels per head).
        {
            using var scope = NewDisposeScope();
            var q = randn(batch, 4, 49, 16);
            var k = randn(batch, 4, 49, 16);
            var v = randn(batch, 4, 49, 16);
            double f = MinTime(repeats, () => { using var s = NewDisposeScope(); using var ng = no_grad(); nn.functional.scaled_dot_product_attention(q, k, v); });
            var qg = q.detach().requires_grad_(true);
            double fb = MinTime(repeats, () => { using var s = NewDisposeScope(); var y = nn.functional.scaled_dot_product_attention(qg, k, v); y.backward(new[] { ones_like(y) }); });
            int blocks = network.modules().Count(m => m.GetType().Name == "UNetAttentionBlock");
            forward["attention (SDPA)"] = blocks * f;
            backward["attention (SDPA)"] = blocks * Math.Max(0, fb - f);
        }

        double step = MinTime(repeats, () =>
        {
            using var s = NewDisposeScope();
            var loss = nn.functional.mse_loss(network.call(z, timesteps, null), eps);
            optimizer.ZeroGrad();
            loss.backward();
            optimizer.Step(1e-4, 0);
        });
        double forwardOnly = MinTime(repeats, () => { using var s = NewDisposeScope(); using var ng = no_grad(); network.call(z, timesteps, null); });
        double adam = MinTime(repeats, () => optimizer.Step(1e-4, 0));

        Console.WriteLine($"reference U-Net, batch {batch}, 1 thread, thread CPU time (min of {repeats}):");
        Console.WriteLine($"{"operation",-22}{"calls",6}{"forward ms",12}{"backward ms",13}");
        foreach (var type in forward.Keys.OrderByDescending(t => forward[t] + backward[t]))
            Console.WriteLine($"{type,-22}{(type.StartsWith("attention") ? network.modules().Count(m => m.GetType().Name == "UNetAttentionBlock") : calls.Count(c => c.Type == type)),6}{Ms(forward[type]),12}{Ms(backward[type]),13}");
        double sumF = forward.Values.Sum(), sumB = backward.Values.Sum();
        Console.WriteLine($"{"sum of the above",-28}{Ms(sumF),12}{Ms(sumB),13}");
        Console.WriteLine($"whole forward (no_grad): {Ms(forwardOnly)} ms; the rest (cat, SiLU, adds, dropout, upsampling, embedding) ≈ {Ms(forwardOnly - sumF)} ms");
        Console.WriteLine($"whole training step: {Ms(step)} ms = {(batch / step).ToString("F1", CultureInfo.InvariantCulture)} images per CPU-second; AdamW step alone {Ms(adam)} ms");
        return 0;
    }
}
