using Diffuse.Data;
using Diffuse.Runtime;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Diffuse.Tests.Training;
using Diffuse.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.Runtime;

/// <summary>
/// Device placement without a GPU: libtorch's "meta" device holds shapes but no data, and refuses to combine its tensors
/// with CPU tensors, so a sampler or a training step run on it fails on the first tensor created on the CPU by mistake.
/// </summary>
public class DeviceTests
{
    private static readonly Device Meta = new(DeviceType.META);

    [Fact]
    public void DeviceNamesParseAndCudaWithoutACudaLibtorchIsOneClearError()
    {
        Assert.Equal(DeviceType.CPU, Devices.Parse("cpu").type);
        Assert.Equal(DeviceType.CPU, Devices.Parse(" CPU ").type);
        Assert.Contains("not a device name", Assert.Throws<DiffuseException>(() => Devices.Parse("gpu")).Message);
        Assert.Contains("not a device name", Assert.Throws<DiffuseException>(() => Devices.Parse("cuda:x")).Message);
        if (cuda.is_available())
            Assert.Equal(DeviceType.CUDA, Devices.Parse("cuda").type);
        else
            Assert.Contains("no CUDA support", Assert.Throws<DiffuseException>(() => Devices.Parse("cuda:0")).Message);
    }

    [Fact]
    public void MixingTensorsOfTwoDevicesFailsSoTheMetaDeviceCatchesStrayCpuTensors()
    {
        using var scope = NewDisposeScope();
        var onMeta = ones(new long[] { 3, 2 }, device: Meta);
        Assert.ThrowsAny<Exception>(() => (onMeta + ones(new long[] { 3, 2 })).shape);
    }

    [Theory]
    [InlineData(SamplerKind.Ddpm)]
    [InlineData(SamplerKind.Ddim)]
    [InlineData(SamplerKind.Euler)]
    [InlineData(SamplerKind.Heun)]
    [InlineData(SamplerKind.EulerAncestral)]
    [InlineData(SamplerKind.DpmSolver2M)]
    [InlineData(SamplerKind.DpmSolver3M)]
    [InlineData(SamplerKind.DpmSolver2MSde)]
    [InlineData(SamplerKind.UniPc)]
    public void EverySamplerKeepsEveryTensorOnTheDevice(SamplerKind kind)
    {
        // The network's normalisation layers and the mixture's where() have no meta kernels in this libtorch build, so the
        // exact denoiser of Gaussian data stands in for the network; the projection onto the data's range wraps it as it
        // wraps a network.
        var schedule = NoiseSchedule.Create(new ScheduleConfig(ScheduleKind.Linear, 50));
        var gaussian = new Diffuse.Denoisers.GaussianDenoiser(schedule, new[] { 1.0, -1.0 }, new[] { 0.5, 2.0 });
        using var scope = NewDisposeScope();
        var clamped = new Diffuse.Denoisers.ClampedDenoiser(gaussian, schedule, new[] { -3.0, -3.0 }, new[] { 3.0, 3.0 });
        var z = Sampler.SampleBatch(clamped, schedule, new long[] { 2 }, 0, 5, 1, new SamplerOptions(kind, 4, ClipX0: 5), device: Meta);
        Assert.Equal(DeviceType.META, z.device.type);
        Assert.Equal(new long[] { 5, 2 }, z.shape);
    }
}
