using Diffuse.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Tests.Checkpoints;

public sealed class StateDictsTests : IDisposable
{
    readonly string _folder = Path.Combine(Path.GetTempPath(), "diffuse-statedicts-" + Guid.NewGuid().ToString("N"));

    public StateDictsTests() => Directory.CreateDirectory(_folder);

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    static nn.Module Model(long hidden, bool extra = false)
    {
        var layers = new List<(string, nn.Module<Tensor, Tensor>)>
        {
            ("input", nn.Linear(4, hidden)),
            ("act", nn.ReLU()),
            ("output", nn.Linear(hidden, 2)),
        };
        if (extra) layers.Add(("norm", nn.LayerNorm(2)));
        return nn.Sequential(layers);
    }

    [Fact]
    public void LoadIntoCopiesASavedCheckpointExactly()
    {
        string path = Path.Combine(_folder, "model.safetensors");
        using var source = Model(8);
        using var target = Model(8);
        var snapshot = StateDicts.Snapshot(source);
        Safetensors.Save(path, snapshot);
        foreach (var t in snapshot.Values) t.Dispose();

        var loaded = Safetensors.Load(path);
        StateDicts.LoadInto(target, loaded, path);
        foreach (var t in loaded.Values) t.Dispose();

        var expected = source.state_dict();
        var actual = target.state_dict();
        Assert.Equal(expected.Keys.OrderBy(k => k), actual.Keys.OrderBy(k => k));
        foreach (var (key, value) in expected)
        {
            SafetensorsTests.AssertSame(value, actual[key]);
            Assert.True(actual[key].requires_grad); // still trainable parameters
        }
    }

    [Fact]
    public void LoadIntoListsEveryMismatchInOneMessageAndChangesNothing()
    {
        using var checkpointModel = Model(6, extra: true);
        using var target = Model(8);
        var before = StateDicts.Snapshot(target);
        var checkpoint = StateDicts.Snapshot(checkpointModel);
        checkpoint.Remove("output.bias", out var removed);
        removed!.Dispose();

        var e = Assert.Throws<DiffuseException>(() => StateDicts.LoadInto(target, checkpoint, "run/model.safetensors"));
        string m = e.Message;
        Assert.Contains("'run/model.safetensors'", m);
        Assert.Contains("key 'output.bias'", m);                                                      // missing
        Assert.Contains("key 'norm.weight'", m);                                                      // unexpected
        Assert.Contains("key 'norm.bias'", m);
        Assert.Contains("key 'input.weight': checkpoint has [6, 4], model expects [8, 4]", m);     // shapes
        Assert.Contains("key 'input.bias': checkpoint has [6], model expects [8]", m);
        Assert.Contains("key 'output.weight': checkpoint has [2, 6], model expects [2, 8]", m);
        Assert.EndsWith("load it with the config.json saved beside it.", m);

        var after = target.state_dict();
        foreach (var (key, value) in before) SafetensorsTests.AssertSame(value, after[key]);
        foreach (var t in before.Values.Concat(checkpoint.Values)) t.Dispose();
    }

    [Fact]
    public void LoadIntoConvertsDTypes()
    {
        using var source = Model(3);
        using var target = Model(3);
        var half = new Dictionary<string, Tensor>();
        foreach (var (key, value) in source.state_dict()) half[key] = value.detach().to(ScalarType.Float16);
        StateDicts.LoadInto(target, half, "half");
        foreach (var (key, value) in target.state_dict())
        {
            Assert.Equal(ScalarType.Float32, value.dtype);
            using var back = value.detach().to(ScalarType.Float16);
            SafetensorsTests.AssertSame(half[key], back);
        }
        foreach (var t in half.Values) t.Dispose();
    }

    [Fact]
    public void SnapshotIsADetachedCopy()
    {
        using var model = Model(5);
        var snapshot = StateDicts.Snapshot(model);
        var weight = model.state_dict()["input.weight"];
        byte[] original = SafetensorsTests.BytesOf(weight);
        using (no_grad()) weight.add_(1);

        Assert.Equal(original, SafetensorsTests.BytesOf(snapshot["input.weight"]));
        Assert.All(snapshot.Values, t => Assert.False(t.requires_grad));
        Assert.All(snapshot.Values, t => Assert.Equal(DeviceType.CPU, t.device_type));
        foreach (var t in snapshot.Values) t.Dispose();
        Assert.False(weight.IsInvalid);
    }
}
