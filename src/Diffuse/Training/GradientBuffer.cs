using Diffuse.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Training;

/// <summary>
/// One flat float32 buffer that holds every parameter's gradient (the parameters' <c>grad</c> are views of it), the
/// step's loss, the loss sums and example counts per quarter of the timesteps and, with importance sampling, one loss
/// per position of the global batch — so that a single all-reduce per step sums all of it over the processes of a
/// data-parallel run. Backward accumulates into the views in place, so nothing is copied.
/// </summary>
internal sealed class GradientBuffer : IDisposable
{
    private readonly Tensor _flat;    // [P + 1 + 2Q (+ B)]

    /// <summary>Binds the gradients of <paramref name="parameters"/> to a new buffer on <paramref name="device"/>.</summary>
    public GradientBuffer(IReadOnlyList<Tensor> parameters, int quartiles, int exampleSlots, Device device)
    {
        Quartiles = quartiles;
        long count = parameters.Sum(p => p.numel());
        _flat = zeros(count + 1 + 2 * quartiles + exampleSlots, dtype: ScalarType.Float32, device: device).DetachFromDisposeScope();
        Gradients = _flat.narrow(0, 0, count).DetachFromDisposeScope();
        Loss = _flat.narrow(0, count, 1).DetachFromDisposeScope();
        QuartileSlots = _flat.narrow(0, count + 1, 2 * quartiles).DetachFromDisposeScope();
        if (exampleSlots > 0) ExampleLosses = _flat.narrow(0, count + 1 + 2 * quartiles, exampleSlots).DetachFromDisposeScope();
        using (no_grad())
        using (NewDisposeScope())
        {
            long offset = 0;
            foreach (var p in parameters)
            {
                p.grad = _flat.narrow(0, offset, p.numel()).view(p.shape);
                offset += p.numel();
            }
        }
    }

    /// <summary>Number of timestep quarters whose loss is summed.</summary>
    public int Quartiles { get; }

    /// <summary>Every parameter's gradient, [P].</summary>
    public Tensor Gradients { get; }

    /// <summary>The step's loss, [1].</summary>
    public Tensor Loss { get; }

    /// <summary>The loss sum per quarter, then the example count per quarter, [2Q].</summary>
    public Tensor QuartileSlots { get; }

    /// <summary>With importance sampling, each position's loss, [B]; null otherwise.</summary>
    public Tensor? ExampleLosses { get; }

    /// <summary>Zeros the per-step statistics (the gradients are zeroed by the optimizer).</summary>
    public void ZeroStatistics()
    {
        using var noGrad = no_grad();
        QuartileSlots.zero_();
        ExampleLosses?.zero_();
    }

    /// <summary>Sums the whole buffer over the processes of <paramref name="collective"/>, in place.</summary>
    public void AllReduce(ICollective collective) => collective.AllReduceSum(_flat);

    /// <summary>The mean loss per quarter after the all-reduce (NaN where no example fell).</summary>
    public double[] QuartileMeans()
    {
        using var scope = NewDisposeScope();
        var sums = QuartileSlots.cpu().data<float>().ToArray();
        var means = new double[Quartiles];
        for (int q = 0; q < Quartiles; q++) means[q] = sums[Quartiles + q] > 0 ? sums[q] / sums[Quartiles + q] : double.NaN;
        return means;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        ExampleLosses?.Dispose();
        QuartileSlots.Dispose();
        Loss.Dispose();
        Gradients.Dispose();
        _flat.Dispose();
    }
}
