using System.Diagnostics;
using System.Globalization;
using Diffuse.Models;
using Diffuse.Optimization;
using Diffuse.Runtime;
using Diffuse.Training;
using TorchSharp;
using static TorchSharp.torch;

/// <summary>Speed and memory of the reference U-Net: 28×28×1, base 32, multipliers 1,2,2, two blocks per level, attention at 7×7.</summary>
internal static class UNetBench
{
    private const int Height = 28, Width = 28, Timesteps = 1000;

    private static UNetConfig Reference => new() { Channels = 1 };

    private static double Median(List<double> values)
    {
        var sorted = values.OrderBy(v => v).ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    private static string Load() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";

    /// <summary>One training step as the trainer makes it: forward, MSE to ε, backward, AdamW; returns the loss.</summary>
    private static float TrainStep(UNetNetwork network, AdamW optimizer, Tensor z, Tensor timesteps, Tensor eps)
    {
        using var scope = NewDisposeScope();
        var loss = nn.functional.mse_loss(network.call(z, timesteps, null), eps);
        optimizer.ZeroGrad();
        loss.backward();
        optimizer.Step(1e-4, 0.0);
        return loss.item<float>();
    }

    private static void Forward(UNetNetwork network, Tensor z, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        network.call(z, timesteps, null);
    }

    /// <summary>
    /// Times <paramref name="runs"/> runs of <paramref name="repeats"/> actions each, after one warm-up run; returns per
    /// run the actions per wall-clock second and per second of this process's CPU time (with one thread, the latter is
    /// what a quiet machine would show: it hardly moves when other processes compete for the cores).
    /// </summary>
    private static (List<double> Wall, List<double> Cpu) Rates(int runs, int repeats, Action action)
    {
        for (int i = 0; i < repeats; i++) action();
        var wall = new List<double>();
        var cpu = new List<double>();
        using var process = Process.GetCurrentProcess();
        for (int run = 0; run < runs; run++)
        {
            process.Refresh();
            var cpuStart = process.TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < repeats; i++) action();
            double seconds = clock.Elapsed.TotalSeconds;
            process.Refresh();
            wall.Add(repeats / seconds);
            cpu.Add(repeats / (process.TotalProcessorTime - cpuStart).TotalSeconds);
        }
        return (wall, cpu);
    }

    private static string Report(string what, (List<double> Wall, List<double> Cpu) rates, int batch, double flopsPerImage)
    {
        var wall = rates.Wall.Select(r => r * batch).ToList();
        var cpu = rates.Cpu.Select(r => r * batch).ToList();
        return $"{what} {F(Median(wall), "F1")} images/s ({F(Median(wall) * flopsPerImage / 1e9, "F1")} GFLOP/s; runs {string.Join(" ", wall.Select(r => F(r, "F1")))}), " +
            $"{F(Median(cpu), "F1")} images per CPU-second";
    }

    /// <summary>
    /// Thread counts (numbers) and flags: <c>--channels-last</c> runs the convolutions on channels-last feature maps;
    /// <c>--bf16</c> (unet-speed) also times a bfloat16 inference copy;
    /// <c>--keep-freed</c> calls <see cref="NativeAllocator.KeepFreedMemory"/> (no mmap/munmap of large blocks).
    /// </summary>
    public static (int[] Threads, bool ChannelsLast) Options(string[] args)
    {
        var threads = args.Where(a => !a.StartsWith("--", StringComparison.Ordinal)).Select(a => int.Parse(a, CultureInfo.InvariantCulture)).ToArray();
        bool keep = args.Contains("--keep-freed") && NativeAllocator.KeepFreedMemory();
        bool channelsLast = args.Contains("--channels-last");
        Console.WriteLine($"layout {(channelsLast ? "channels-last convolutions" : "standard (NCHW)")}; allocator {(keep ? "keeps freed memory" : "glibc default (mmap for blocks above 32 MiB)")}");
        return (threads.Length > 0 ? threads : new[] { 1, 2 }, channelsLast);
    }

    public static int Speed(string[] args)
    {
        var (threadCounts, channelsLast) = Options(args);
        bool bfloat16 = args.Contains("--bf16");
        const int batch = 128, runs = 5;
        manual_seed(0);
        using var network = new UNetNetwork(Reference, Timesteps) { ChannelsLast = channelsLast };
        long parameters = network.parameters().Sum(p => p.numel());
        long flops = network.ForwardFlops(Height, Width);
        Console.WriteLine($"reference U-Net: {parameters:N0} parameters, {flops:N0} FLOP per image forward ({F(flops / 1e9, "F3")} GFLOP); training ≈ 3× forward");
        Console.WriteLine($"load average before: {Load()}");
        using var z = randn(batch, 1, Height, Width);
        using var eps = randn(batch, 1, Height, Width);
        using var timesteps = randint(0, Timesteps, new long[] { batch }).to_type(ScalarType.Float32);
        foreach (int threads in threadCounts)
        {
            set_num_threads(threads);
            Console.WriteLine($"threads {threads} (load average {Load()}); medians of {runs} runs, batch {batch}:");
            network.train();
            using var optimizer = new AdamW(network.parameters());
            var train = Rates(runs, 2, () => TrainStep(network, optimizer, z, timesteps, eps));
            Console.WriteLine("  " + Report("training (forward, MSE, backward, AdamW)", train, batch, 3.0 * flops));
            network.eval();
            (List<double>, List<double>) infer;
            using (inference_mode()) infer = Rates(runs, 3, () => Forward(network, z, timesteps));
            Console.WriteLine("  " + Report("inference float32", infer, batch, flops));

            if (!bfloat16) continue;
            using var bf16 = network.CopyForInference(ScalarType.BFloat16);
            using var zHalf = z.to_type(ScalarType.BFloat16);
            using (inference_mode())
            {
                // One forward per run: without native bfloat16 instructions (AVX-512 BF16) it can be many times slower.
                var inferHalf = Rates(3, 1, () => Forward(bf16, zHalf, timesteps));
                using var scope = NewDisposeScope();
                // The zero-initialised layers make a fresh network's output zero: compare after the training steps above.
                var reference = network.call(z, timesteps, null);
                var half = bf16.call(zHalf, timesteps, null).to_type(ScalarType.Float32);
                float maxDiff = (half - reference).abs().max().item<float>(), maxRef = reference.abs().max().item<float>();
                Console.WriteLine("  " + Report("inference bfloat16", inferHalf, batch, flops) + $"; max |bf16 − fp32| {F(maxDiff, "G3")} (max |fp32| {F(maxRef, "G3")})");
            }
        }
        Console.WriteLine($"load average after: {Load()}");
        return 0;
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct MallInfo2
    {
        public nuint Arena, Ordblks, Smblks, Hblks, Hblkhd, Usmblks, Fsmblks, Uordblks, Fordblks, Keepcost;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "mallinfo2")]
    private static extern MallInfo2 MallInfo();

    /// <summary>Bytes glibc's malloc has handed out and not taken back (all arenas' in-use chunks plus mapped blocks).</summary>
    private static double NativeHeapInUse()
    {
        try
        {
            var info = MallInfo();
            return (double)info.Uordblks + info.Hblkhd;
        }
        catch (EntryPointNotFoundException)
        {
            return double.NaN;
        }
    }

    public static int Memory(string[] args)
    {
        var (numbers, channelsLast) = Options(args);
        int steps = args.Any(a => !a.StartsWith("--", StringComparison.Ordinal)) ? numbers[0] : 1000;
        int batch = numbers.Length > 1 ? numbers[1] : 16;
        set_num_threads(1);
        manual_seed(0);
        using var network = new UNetNetwork(Reference, Timesteps) { ChannelsLast = channelsLast };
        network.train();
        using var optimizer = new AdamW(network.parameters());
        var clock = Stopwatch.StartNew();
        for (int step = 1; step <= steps; step++)
        {
            using (var scope = NewDisposeScope())
            {
                var z = randn(batch, 1, Height, Width);
                var eps = randn(batch, 1, Height, Width);
                var timesteps = randint(0, Timesteps, new long[] { batch }).to_type(ScalarType.Float32);
                TrainStep(network, optimizer, z, timesteps, eps);
            }
            if (step is 1 or 10 or 100 or 200 or 500 || step % 1000 == 0 || step == steps)
            {
                using var process = Process.GetCurrentProcess();
                Console.WriteLine($"step {step}: RSS {F(process.WorkingSet64 / 1048576.0, "F1")} MiB (native heap in use {F(NativeHeapInUse() / 1048576.0, "F1")} MiB, " +
                    $".NET heap {F(GC.GetTotalMemory(false) / 1048576.0, "F1")} MiB), live tensors {DisposeScopeManager.Statistics.ThreadTotalLiveCount}, {F(clock.Elapsed.TotalSeconds, "F0")} s");
            }
        }
        return 0;
    }
}
